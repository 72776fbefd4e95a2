import { z } from 'zod';
import { isJsonObject, isRepresentableInstant, isStorableText, isWellFormed, RANGE_MESSAGE } from './input-checks';

/*
 * The schemas every edge (API bodies, path and query parameters, CLI options, workflow inputs)
 * builds on, so that whatever passes validation can also be stored: PostgreSQL refuses some
 * values that JSON and JavaScript accept, and each of those used to surface as a 500 after the
 * request had been accepted (and, in a shared ingest statement, took the valid events with it).
 *   - text and jsonb hold no NUL character (U+0000), and UTF-8 has no form for a UTF-16 surrogate
 *     that pairs with nothing (jsonb refuses "\ud800"; text would silently store U+FFFD);
 *   - timestamptz has no year 0, and RFC 3339 (what clients send, and what the API answers) has
 *     four-digit years only;
 *   - deeply nested JSON overflows the stack of every recursive reader (JSON.stringify first).
 */

const UNSTORABLE_MESSAGE = 'must not contain NUL characters (U+0000) or unpaired UTF-16 surrogates';

/** The messages of `storable` and `text`, for hand-written validators that must say the same (src/domain/metering/event-validator.ts). */
export const TEXT_MESSAGES = {
  nul: 'must not contain NUL characters (U+0000)',
  surrogate: 'must not contain unpaired UTF-16 surrogates',
  empty: 'must not be empty',
  tooLong: (max: number) => `must be at most ${max} characters`,
} as const;

/** As a pattern, so that the OpenAPI document says it too (a lone surrogate has no pattern: JSON Schema matches code points). */
// eslint-disable-next-line no-control-regex -- refusing NUL is the point
const NO_NUL = /^[^\u0000]*$/;

/** A string schema (with its own messages and bounds) that also refuses what PostgreSQL cannot store. */
export const storable = <T extends z.ZodType<string>>(schema: T): T =>
  schema.check(z.regex(NO_NUL, TEXT_MESSAGES.nul)).refine(isWellFormed, TEXT_MESSAGES.surrogate);

/** Text of `min` (default 1) to `max` UTF-16 code units that PostgreSQL can store as it is. */
export const text = ({ min = 1, max }: { min?: number; max: number }) =>
  storable(
    z
      .string()
      .min(min, min === 1 ? TEXT_MESSAGES.empty : `must be at least ${min} characters`)
      .max(max, TEXT_MESSAGES.tooLong(max)),
  );

/** External ids, names of events and of properties, idempotency keys: the API's identifiers. */
export const Identifier = text({ max: 128 });

/** An opaque pagination cursor: the `next_cursor` of the previous page. */
export const CursorSchema = text({ max: 256 }).meta({ description: 'The `next_cursor` of the previous page' });

/**
 * An http(s) URL as stored: lower-case scheme (what webhook_endpoints' check wants), no white
 * space. The WHATWG parser behind z.url accepts `HTTPS://…` and a space in the path, but zod
 * passes on the text as sent (only trimmed), not the parser's normalized form.
 */
export const HttpUrlSchema = storable(
  z
    .url({ protocol: /^https?$/, error: 'must be an http or https URL' })
    .max(2048, 'must be at most 2048 characters')
    // eslint-disable-next-line no-control-regex -- refusing NUL is the point
    .regex(/^https?:\/\/[^\s\u0000]+$/, 'must start with http:// or https:// in lower case and contain no white space'),
);

/**
 * An RFC 3339 instant with its offset (`2026-03-01T00:00:00Z`, `…+02:00`). The range is checked
 * in UTC: `0001-01-01T00:00:00+01:00` is in year 0 once converted, which PostgreSQL refuses.
 */
export const INSTANT_MESSAGE = 'must be an RFC 3339 instant with a time zone, such as 2026-01-31T00:00:00Z';
export const InstantSchema = z.iso
  .datetime({ offset: true, error: INSTANT_MESSAGE })
  .refine((iso) => isRepresentableInstant(Date.parse(iso)), RANGE_MESSAGE);

/** How deep a free-form JSON value may nest: plenty for event properties, far from any stack limit. */
export const MAX_JSON_DEPTH = 32;

export interface JsonIssue {
  path: PropertyKey[];
  message: string;
}

export interface JsonLimits {
  maxDepth?: number;
  /** Object keys longer than this are refused. */
  maxKeyLength?: number;
}

/**
 * The first reason a parsed JSON value cannot be stored as jsonb and read back safely, or
 * undefined: an unstorable string or key, a number JSON.parse turned into Infinity, a key longer
 * than allowed, or nesting deeper than `maxDepth` (objects and arrays count one level each). The
 * recursion stops at `maxDepth`, so a value nested 10,000 deep is refused instead of overflowing
 * the stack. `__proto__` keys are refused because a JavaScript object copy (zod's included)
 * drops or misreads them. The path is built only for the value that fails: this runs per event.
 */
export function jsonValueIssue(
  value: unknown,
  { maxDepth = MAX_JSON_DEPTH, maxKeyLength = Infinity }: JsonLimits = {},
): JsonIssue | undefined {
  return jsonIssueAt(value, 0, maxDepth, maxKeyLength);
}

/** jsonValueIssue's walk, at module level so that a call (once per event) allocates no closure. */
function jsonIssueAt(v: unknown, depth: number, maxDepth: number, maxKeyLength: number): JsonIssue | undefined {
  if (v === null || typeof v === 'boolean') return undefined;
  if (typeof v === 'string') return isStorableText(v) ? undefined : { path: [], message: UNSTORABLE_MESSAGE };
  if (typeof v === 'number')
    return Number.isFinite(v)
      ? undefined
      : { path: [], message: 'must be a finite number (JSON numbers beyond ±1.8e308 are not representable)' };
  if (typeof v !== 'object') return { path: [], message: 'must be a JSON value' };
  if (depth >= maxDepth) return { path: [], message: `nests deeper than ${maxDepth} levels` };
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const issue = jsonIssueAt(v[i], depth + 1, maxDepth, maxKeyLength);
      if (issue) return (issue.path.unshift(i), issue);
    }
    return undefined;
  }
  for (const key of Object.keys(v)) {
    const issue =
      key === '__proto__'
        ? { path: [], message: PROTO_KEY_MESSAGE }
        : key.length > maxKeyLength
          ? { path: [], message: `keys must be at most ${maxKeyLength} characters` }
          : !isStorableText(key)
            ? { path: [], message: `keys ${UNSTORABLE_MESSAGE}` }
            : jsonIssueAt((v as Record<string, unknown>)[key], depth + 1, maxDepth, maxKeyLength);
    if (issue) return (issue.path.unshift(key), issue);
  }
  return undefined;
}

/** Whether a JSON value nests deeper than `maxDepth` levels; the recursion stops there, so any value is safe to ask about. */
export function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (maxDepth <= 0) return true;
  return (Array.isArray(value) ? value : Object.values(value)).some((item) => nestsDeeperThan(item, maxDepth - 1));
}

const PROTO_KEY_MESSAGE = 'the key "__proto__" is not allowed';

/**
 * A JSON object of `key` to `value`, as z.record, except that a `__proto__` key is refused: zod
 * builds the parsed record by assignment, which drops that key without a word.
 */
export const record = <K extends z.core.$ZodRecordKey, V extends z.ZodType>(key: K, value: V) =>
  z.preprocess(
    (input, ctx) => {
      if (typeof input === 'object' && input !== null && Object.hasOwn(input, '__proto__')) {
        ctx.issues.push({ code: 'custom', path: ['__proto__'], message: PROTO_KEY_MESSAGE, input });
      }
      return input;
    },
    z.record(key, value),
  );

export const JSON_OBJECT_MESSAGE = 'must be a JSON object';

/**
 * A free-form JSON object (event properties) whose keys are at most `maxKeyLength` long and whose
 * whole content is storable (see jsonValueIssue). It is passed on as it came, not copied.
 */
export const jsonObject = ({ maxKeyLength = 128, maxDepth = MAX_JSON_DEPTH }: JsonLimits = {}) =>
  z
    .custom<Record<string, unknown>>(isJsonObject, JSON_OBJECT_MESSAGE)
    .superRefine((value, ctx) => {
      const issue = jsonValueIssue(value, { maxDepth, maxKeyLength });
      if (issue) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
    })
    .meta({ type: 'object', additionalProperties: {} });
