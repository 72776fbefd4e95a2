import Decimal from 'decimal.js';
import { z } from 'zod';
import { quote, storable } from './edge-schemas';
import { IsoDurationSchema, parseIsoDuration } from './periods';

/*
 * Limits per meter and their evaluation: which soft thresholds usage has newly crossed, and the
 * hard-limit state machine ok → over_limit_in_grace → blocked (or overage when the plan bills
 * usage past the limit instead of blocking). Pure and clock-free: the billing workflow passes in
 * its own time, and the API answers entitlement checks from memory with the same rules.
 */

/**
 * Percent-of-limit products of 20-digit limits and usage totals of up to 40 digits on each side
 * stay exact well within this precision. Comparisons themselves are never rounded.
 */
const Exact = Decimal.clone({ precision: 200 });
type Exact = InstanceType<typeof Exact>;

/** Limits and thresholds, matching plan amounts: plain digits, at most 20 on each side of the point. */
const LIMIT_PATTERN = /^\d{1,20}(\.\d{1,20})?$/;
/** Usage totals and requested quantities, which sum many event values, get more room. */
const USAGE_PATTERN = /^\d{1,40}(\.\d{1,40})?$/;

const NonNegativeDecimal = z
  .string({
    error: (issue) =>
      issue.input === undefined
        ? 'is required'
        : 'must be a decimal string such as "1000" or "12.5"; JSON numbers are refused to keep limits exact',
  })
  .regex(LIMIT_PATTERN, {
    error: (issue) =>
      `${quote(issue.input)} is not a non-negative decimal string: use plain digits such as "1000" or "12.5" (no sign, exponent, NaN or Infinity)`,
  });

const PercentThresholdSchema = z
  .strictObject({
    percent: z
      .number({ error: 'must be a number of percent such as 80' })
      .positive('must be greater than 0')
      .max(1000, 'must be at most 1000')
      .meta({ description: 'Percent of hard_limit; above 100 warns about overage when at_hard_limit is allow.' }),
  })
  .meta({ id: 'PercentThreshold' });

const AbsoluteThresholdSchema = z
  .strictObject({
    absolute: NonNegativeDecimal.refine((text) => !LIMIT_PATTERN.test(text) || new Exact(text).gt(0), 'must be greater than 0').meta({
      description: 'Usage, in meter units, at which to notify.',
    }),
  })
  .meta({ id: 'AbsoluteThreshold' });

/** zod reports a failed union as a whole, so the message says which field was wrong and how. */
function thresholdShapeError(input: unknown): string {
  const keys = input !== null && typeof input === 'object' ? Object.keys(input) : [];
  if (keys.includes('percent') && keys.includes('absolute')) return 'give either percent or absolute, not both';
  if (keys.includes('percent')) return `percent must be a number such as 80 (got ${quote((input as { percent: unknown }).percent)})`;
  if (keys.includes('absolute'))
    return `absolute must be a decimal string such as "1000" (got ${quote((input as { absolute: unknown }).absolute)})`;
  return 'must be { "percent": 80 } or { "absolute": "1000" }';
}

export const SoftThresholdSchema = z
  .union([PercentThresholdSchema, AbsoluteThresholdSchema], { error: (issue) => thresholdShapeError(issue.input) })
  .meta({ id: 'SoftThreshold' });
export type SoftThreshold = z.infer<typeof SoftThresholdSchema>;

export const hardLimitActions = ['block', 'allow'] as const;
export type HardLimitAction = (typeof hardLimitActions)[number];

export const MeterLimitSchema = z
  .strictObject({
    meter: storable(z.string({ error: 'is required' }).min(1, 'must not be empty').max(200, 'must be at most 200 characters')),
    soft_thresholds: z.array(SoftThresholdSchema).default([]).meta({ description: 'Each notifies once per period when usage reaches it.' }),
    hard_limit: NonNegativeDecimal.optional().meta({ description: 'Usage above this is over the limit; usage equal to it is not.' }),
    grace_period: IsoDurationSchema.optional().meta({
      description: 'How long usage may stay over the hard limit before it is blocked (block only). Absent: blocked at once.',
      example: 'PT1H',
    }),
    at_hard_limit: z
      .enum(hardLimitActions, { error: 'must be "block" (refuse usage after the grace period) or "allow" (bill it as overage)' })
      .optional()
      .meta({ description: 'Required with hard_limit.' }),
  })
  .superRefine((limit, ctx) => {
    if (limit.hard_limit === undefined && limit.soft_thresholds.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['hard_limit'], message: 'a limit needs a hard_limit, soft_thresholds or both' });
    }
    if (limit.hard_limit !== undefined && limit.at_hard_limit === undefined) {
      ctx.addIssue({ code: 'custom', path: ['at_hard_limit'], message: 'is required with hard_limit: "block" or "allow"' });
    }
    if (limit.hard_limit === undefined && limit.at_hard_limit !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['at_hard_limit'], message: 'applies only with a hard_limit' });
    }
    if (limit.grace_period !== undefined && limit.at_hard_limit !== 'block') {
      ctx.addIssue({
        code: 'custom',
        path: ['grace_period'],
        message: 'applies only when at_hard_limit is "block"; usage past an "allow" limit is billed, never blocked',
      });
    }
    const seen = new Map<string, number>();
    limit.soft_thresholds.forEach((threshold, i) => {
      if ('percent' in threshold && limit.hard_limit === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['soft_thresholds', i, 'percent'],
          message: 'a percent threshold is a percent of hard_limit, which is not set',
        });
      }
      // Refinements run even after a field failed its own checks; only well-formed values have a key.
      if ('percent' in threshold ? typeof threshold.percent !== 'number' : !LIMIT_PATTERN.test(threshold.absolute)) return;
      const key = thresholdKey(threshold);
      const first = seen.get(key);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['soft_thresholds', i], message: `duplicates soft_thresholds[${first}] (${key})` });
      } else {
        seen.set(key, i);
      }
    });
  })
  .meta({ id: 'MeterLimit' });

export type MeterLimit = z.infer<typeof MeterLimitSchema>;

/** A plan's limits: at most one per meter. */
export const MeterLimitsSchema = z
  .array(MeterLimitSchema)
  .superRefine((limits, ctx) => {
    const seen = new Set<string>();
    limits.forEach((limit, i) => {
      if (seen.has(limit.meter))
        ctx.addIssue({ code: 'custom', path: [i, 'meter'], message: `meter "${limit.meter}" already has a limit` });
      seen.add(limit.meter);
    });
  })
  .meta({ id: 'MeterLimits' });

const Timestamp = z.iso.datetime();

/** The hard-limit state of one meter in one period. Timestamps are ISO 8601 UTC strings so the state travels as JSON. */
export const LimitStateSchema = z
  .discriminatedUnion('status', [
    z.strictObject({ status: z.literal('ok') }),
    z.strictObject({ status: z.literal('over_limit_in_grace'), over_since: Timestamp, grace_ends_at: Timestamp }),
    z.strictObject({ status: z.literal('blocked'), over_since: Timestamp, blocked_since: Timestamp }),
    z.strictObject({ status: z.literal('overage'), over_since: Timestamp }),
  ])
  .meta({ id: 'LimitState' });

export type LimitState = z.infer<typeof LimitStateSchema>;
export type LimitStatus = LimitState['status'];

/**
 * How a threshold is named in the set of thresholds already notified, and to people: "80%" or
 * "1000" (decimal-normalized, so "1000.0" and "1000" are the same threshold). A percent threshold
 * keeps its name when a plan change moves the hard limit, so it still notifies once per period.
 */
export function thresholdKey(threshold: SoftThreshold): string {
  return 'percent' in threshold ? `${new Exact(threshold.percent).toFixed()}%` : new Exact(threshold.absolute).toFixed();
}

export interface ThresholdCrossing {
  key: string;
  /** The usage at which it fires, as a decimal string. */
  value: string;
}

export interface LimitEvaluation {
  /** Reached now and not notified before in this period, lowest first: notify each, then add their keys to the notified set. */
  newlyCrossed: ThresholdCrossing[];
  overHardLimit: boolean;
  state: LimitState;
}

/**
 * Re-evaluates one meter's limit after new usage, a plan change or a grace timer firing.
 *
 * - A threshold is reached when usage is at or above it; the hard limit is exceeded only when
 *   usage is strictly above it (using exactly the allowance is fine).
 * - Not over the limit (or no hard limit any more): `ok`, from any state. Within a period usage
 *   only grows, so this is how a plan change that raises the limit unblocks.
 * - Over an `allow` limit: `overage`, never blocked.
 * - Over a `block` limit: the grace period starts now (`over_limit_in_grace`), and at its end the
 *   meter is `blocked`. Its deadline is fixed when it starts; a zero grace period blocks at once.
 *   A plan change that keeps usage over the limit leaves a running grace period or a block as is.
 */
export function evaluateLimit(
  limit: MeterLimit,
  observed: { usage: string; notified: Iterable<string>; state: LimitState },
  now: Date,
): LimitEvaluation {
  const usage = parseUsage(observed.usage, 'usage');
  const notified = new Set(observed.notified);
  const newlyCrossed = resolveThresholds(limit)
    .filter((t) => usage.gte(t.at) && !notified.has(t.key))
    .map(({ key, at }) => ({ key, value: at.toFixed() }));
  const overHardLimit = limit.hard_limit !== undefined && usage.gt(limit.hard_limit);
  return { newlyCrossed, overHardLimit, state: limitStateAfter(limit, observed.state, overHardLimit, now) };
}

/**
 * The hard-limit state machine on its own, for any limit with an action and a grace period (a
 * meter's hard limit, a subscription's spend limit): where `state` goes when usage is, or is
 * not, `over` at `now`.
 */
export function limitStateAfter(
  limit: Pick<MeterLimit, 'at_hard_limit' | 'grace_period'>,
  state: LimitState,
  over: boolean,
  now: Date,
): LimitState {
  if (!over) return { status: 'ok' };
  const overSince = state.status === 'ok' ? now.toISOString() : state.over_since;
  if (limit.at_hard_limit === 'allow') return { status: 'overage', over_since: overSince };
  if (state.status === 'blocked') return state;
  const graceEndsAt =
    state.status === 'over_limit_in_grace'
      ? new Date(state.grace_ends_at)
      : new Date(now.getTime() + parseIsoDuration(limit.grace_period ?? 'PT0S'));
  if (now.getTime() < graceEndsAt.getTime())
    return { status: 'over_limit_in_grace', over_since: overSince, grace_ends_at: graceEndsAt.toISOString() };
  return { status: 'blocked', over_since: overSince, blocked_since: graceEndsAt.toISOString() };
}

/**
 * The usage at which the workflow next decides something for this meter, for producers to
 * report at once when usage comes near it (and slowly otherwise): the lowest soft threshold not
 * yet notified that usage has not reached, or the hard limit while usage is not over it,
 * whichever is lower; null when neither is left. A decimal string, exact.
 */
export function nextDecision(limit: MeterLimit, observed: { usage: string; notified: Iterable<string> }): string | null {
  const usage = parseUsage(observed.usage, 'usage');
  const notified = new Set(observed.notified);
  const candidates = resolveThresholds(limit)
    .filter((t) => !notified.has(t.key) && t.at.gt(usage))
    .map((t) => t.at);
  // Over the hard limit only strictly above it: at it exactly, the next unit decides.
  if (limit.hard_limit !== undefined && usage.lte(limit.hard_limit)) candidates.push(new Exact(limit.hard_limit));
  if (candidates.length === 0) return null;
  return Exact.min(...candidates).toFixed();
}

/** The answer to "may this customer use (quantity more of) this meter now?", as the API returns it. */
export interface Entitlement {
  allowed: boolean;
  /** Usage left before the hard limit, never negative; null without a hard limit. */
  remaining: string | null;
  state: LimitStatus;
  /** Keys of the soft thresholds usage has reached, lowest first. */
  soft_thresholds_crossed: string[];
  /** When usage starts again from zero: the end of the current period, ISO 8601 UTC. */
  resets_at: string;
}

/**
 * Answers an entitlement check from usage and limit state already in memory. Refused when the
 * meter is blocked, or when a `block` limit has no grace period and the requested quantity
 * (default 0) would take usage over it; with a grace period, going over is what the grace is for.
 * A meter without a limit is always allowed.
 */
export function checkEntitlement(
  limit: MeterLimit | undefined,
  current: { usage: string; state: LimitState; quantity?: string; periodEnd: Date },
): Entitlement {
  const usage = parseUsage(current.usage, 'usage');
  const after = usage.plus(parseUsage(current.quantity ?? '0', 'quantity'));
  const hardLimit = limit?.hard_limit === undefined ? undefined : new Exact(limit.hard_limit);
  const hardStop = limit?.at_hard_limit === 'block' && parseIsoDuration(limit.grace_period ?? 'PT0S') === 0;
  return {
    allowed: current.state.status !== 'blocked' && !(hardStop && hardLimit !== undefined && after.gt(hardLimit)),
    remaining: hardLimit === undefined ? null : Exact.max(hardLimit.minus(usage), 0).toFixed(),
    state: current.state.status,
    soft_thresholds_crossed:
      limit === undefined
        ? []
        : resolveThresholds(limit)
            .filter((t) => usage.gte(t.at))
            .map((t) => t.key),
    resets_at: current.periodEnd.toISOString(),
  };
}

/** Each threshold with the usage at which it fires, lowest first. */
function resolveThresholds(limit: MeterLimit): { key: string; at: Exact }[] {
  return limit.soft_thresholds
    .map((threshold) => {
      if ('absolute' in threshold) return { key: thresholdKey(threshold), at: new Exact(threshold.absolute) };
      if (limit.hard_limit === undefined)
        throw new Error(`limit for meter "${limit.meter}" has a percent threshold but no hard_limit; parse it with MeterLimitSchema`);
      return { key: thresholdKey(threshold), at: new Exact(limit.hard_limit).times(threshold.percent).div(100) };
    })
    .sort((a, b) => a.at.comparedTo(b.at));
}

function parseUsage(text: string, name: string): Exact {
  if (!USAGE_PATTERN.test(text)) throw new RangeError(`${name} ${JSON.stringify(text)} is not a non-negative decimal string`);
  return new Exact(text);
}
