import { z } from 'zod';
import { INSTANT_MESSAGE, JSON_OBJECT_MESSAGE, jsonValueIssue, MAX_JSON_DEPTH, TEXT_MESSAGES } from '../edge-schemas';
import { isJsonObject } from '../input-checks';
import { isRepresentableInstant, isWellFormed, RANGE_MESSAGE } from '../input-checks';
import type { EventInput } from './event-input';

/*
 * EventInputSchema (zod) decides, by hand, for the ingest hot path: zod's safeParse cost ~10 % of
 * the ingest CPU, one event at a time. Same accept/reject decisions, same issues (path, message,
 * code) in the same order, same parsed value; test/unit/event-validator.test.ts feeds both the
 * same generated inputs. The zod schema stays the contract and the OpenAPI document: a change
 * there must be made here too, and that test says where they differ.
 */

export interface EventIssue {
  code: string;
  path: PropertyKey[];
  message: string;
}

export type EventValidation = { success: true; data: EventInput } | { success: false; error: { issues: EventIssue[] } };

/** The pattern z.iso.datetime({ offset: true }) checks, built by zod itself. */
const INSTANT_PATTERN = z.core.regexes.datetime({ offset: true, local: false, precision: null });

/** The type name zod's messages use for a value (zod's util.parsedType and the English locale's getTypeName). */
function receivedType(value: unknown): string {
  switch (typeof value) {
    case 'number':
      return Number.isNaN(value) ? 'NaN' : Number.isFinite(value) ? 'number' : String(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) return 'array';
      const ctor = (value as { constructor?: { name?: string } }).constructor;
      if (Object.getPrototypeOf(value) !== Object.prototype && 'constructor' in value && ctor) return ctor.name as string;
      return 'object';
    }
    default:
      return typeof value;
  }
}

const expectedString = (value: unknown) => `Invalid input: expected string, received ${receivedType(value)}`;

const MAX_IDENTIFIER = 128;
const MAX_PROPERTY_KEY = 128;

/** Code points, as zod measures a string's min and max: a surrogate pair counts one, a lone surrogate one. */
function codePoints(text: string): number {
  let count = text.length;
  for (let i = 0; i < text.length - 1; i++) {
    if ((text.charCodeAt(i) & 0xfc00) === 0xd800 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      count--;
      i++;
    }
  }
  return count;
}

/** At most `max` code points; the count is needed only beyond `max` UTF-16 units (a code point is one or two). */
const fitsIn = (text: string, max: number): boolean => text.length <= max || codePoints(text) <= max;

/** `Identifier` (text({ max: 128 })): every failing check, in zod's order. */
function identifierIssues(value: unknown, key: string, issues: EventIssue[]): void {
  if (typeof value !== 'string') {
    issues.push({ code: 'invalid_type', path: [key], message: expectedString(value) });
    // zod still runs the length checks on anything with a length (an array, {"length": …}), compared as it is.
    const units = value === null || value === undefined ? undefined : (value as { length?: unknown }).length;
    if (units !== undefined) {
      if (!((units as number) >= 1)) issues.push({ code: 'too_small', path: [key], message: TEXT_MESSAGES.empty });
      if (!((units as number) <= MAX_IDENTIFIER))
        issues.push({ code: 'too_big', path: [key], message: TEXT_MESSAGES.tooLong(MAX_IDENTIFIER) });
    }
    return;
  }
  if (value.length < 1) issues.push({ code: 'too_small', path: [key], message: TEXT_MESSAGES.empty });
  if (!fitsIn(value, MAX_IDENTIFIER)) issues.push({ code: 'too_big', path: [key], message: TEXT_MESSAGES.tooLong(MAX_IDENTIFIER) });
  if (value.includes('\u0000')) issues.push({ code: 'invalid_format', path: [key], message: TEXT_MESSAGES.nul });
  if (!isWellFormed(value)) issues.push({ code: 'custom', path: [key], message: TEXT_MESSAGES.surrogate });
}

const isIdentifier = (value: unknown): value is string =>
  typeof value === 'string' && value.length >= 1 && fitsIn(value, MAX_IDENTIFIER) && !value.includes('\u0000') && isWellFormed(value);

const PROPERTY_LIMITS = { maxDepth: MAX_JSON_DEPTH, maxKeyLength: MAX_PROPERTY_KEY };

const SHAPE = new Set(['id', 'customer', 'type', 'timestamp', 'properties']);

/** Every issue zod reports for an object input (the slow path: only for an event that fails). */
function objectIssues(item: Record<string, unknown>): EventIssue[] {
  const issues: EventIssue[] = [];
  identifierIssues(item.id, 'id', issues);
  if (item.customer !== undefined) identifierIssues(item.customer, 'customer', issues);
  identifierIssues(item.type, 'type', issues);
  const timestamp = item.timestamp;
  if (timestamp !== undefined) {
    if (typeof timestamp !== 'string') issues.push({ code: 'invalid_type', path: ['timestamp'], message: INSTANT_MESSAGE });
    else {
      if (!INSTANT_PATTERN.test(timestamp)) issues.push({ code: 'invalid_format', path: ['timestamp'], message: INSTANT_MESSAGE });
      if (!isRepresentableInstant(Date.parse(timestamp))) issues.push({ code: 'custom', path: ['timestamp'], message: RANGE_MESSAGE });
    }
  }
  const properties = item.properties;
  if (properties !== undefined) {
    if (!isJsonObject(properties)) issues.push({ code: 'custom', path: ['properties'], message: JSON_OBJECT_MESSAGE });
    else {
      const issue = jsonValueIssue(properties, PROPERTY_LIMITS);
      if (issue) issues.push({ code: 'custom', path: ['properties', ...issue.path], message: issue.message });
    }
  }
  const unrecognized: string[] = [];
  for (const key in item) if (!SHAPE.has(key)) unrecognized.push(key);
  if (unrecognized.length > 0) {
    issues.push({
      code: 'unrecognized_keys',
      path: [],
      message: `Unrecognized key${unrecognized.length > 1 ? 's' : ''}: ${unrecognized.map((k) => `"${k}"`).join(', ')}`,
    });
  }
  return issues;
}

/** The last timestamp found valid: the events of a batch often share theirs. */
let lastValidTimestamp: string | undefined;

function isValidTimestamp(timestamp: unknown): boolean {
  if (typeof timestamp !== 'string' || !INSTANT_PATTERN.test(timestamp) || !isRepresentableInstant(Date.parse(timestamp))) return false;
  lastValidTimestamp = timestamp;
  return true;
}

/** EventInputSchema.safeParse, by hand: the fast path checks a valid event once and allocates only its result. */
export function validateEvent(item: unknown): EventValidation {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    return {
      success: false,
      error: { issues: [{ code: 'invalid_type', path: [], message: `Invalid input: expected object, received ${receivedType(item)}` }] },
    };
  }
  const input = item as Record<string, unknown>;
  const { id, customer, type, timestamp, properties } = input;
  let valid =
    isIdentifier(id) &&
    (customer === undefined || isIdentifier(customer)) &&
    isIdentifier(type) &&
    (timestamp === undefined || timestamp === lastValidTimestamp || isValidTimestamp(timestamp)) &&
    (properties === undefined || (isJsonObject(properties) && jsonValueIssue(properties, PROPERTY_LIMITS) === undefined));
  if (valid) {
    for (const key in input) {
      if (!SHAPE.has(key)) {
        valid = false;
        break;
      }
    }
  }
  if (!valid) return { success: false, error: { issues: objectIssues(input) } };
  // zod's output: the declared keys present in the input (an absent optional stays absent), properties defaulted.
  const data: EventInput = {
    id: id as string,
    type: type as string,
    properties: (properties as Record<string, unknown> | undefined) ?? {},
  };
  if ('customer' in input) data.customer = customer as string | undefined;
  if ('timestamp' in input) data.timestamp = timestamp as string | undefined;
  return { success: true, data };
}
