import Decimal from 'decimal.js';
import { parseIsoDuration } from './iso-duration';
import type { LimitState, LimitStatus, MeterLimit } from './quota-policy-schema';
import { thresholdKey } from './threshold-key';

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

/** Usage totals and requested quantities, which sum many event values, get more room. */
const USAGE_PATTERN = /^\d{1,40}(\.\d{1,40})?$/;

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
