import { isJsonObject } from './input-checks';
import { Decimal, UNSIGNED_DECIMAL_PATTERN } from './money';
import { parseIsoDuration } from './iso-duration';
import { limitStateAfter } from './quota-policy';
import type { LimitState } from './quota-policy-schema';
import type { SpendCap } from './spend-limit-schema';

/*
 * Real-time spend limits: how much the open period's priced usage may reach (a spend cap on the
 * subscription; with prepaid credits, the balance), how far each charged meter can go before it
 * gets there (its runway), and the limit's state, which follows the hard-limit state machine of
 * the quota policy: reached → grace period → blocked. Pure: the billing workflow evaluates it with
 * its own clock, the pricing activity computes spend and runway.
 */

const SPEND_CAP_KEYS = new Set(['amount', 'grace_period', 'soft_thresholds']);

const isDuration = (v: unknown): boolean => {
  if (typeof v !== 'string') return false;
  try {
    parseIsoDuration(v);
    return true;
  } catch {
    return false;
  }
};

const isCapThreshold = (t: unknown): t is { percent: number } =>
  isJsonObject(t) && Object.keys(t).length === 1 && typeof t.percent === 'number' && t.percent > 0 && t.percent <= 100;

/**
 * Whether `value` is a spend cap exactly as SpendCapSchema outputs it: what the billing
 * workflow's update accepts. The API parses with the schema first; this refuses anything else
 * (sent from the Temporal UI, say) without loading zod into the workflow bundle.
 * test/unit/workflow-input-guards.properties.test.ts holds the two together.
 */
export function isSpendCap(value: unknown): value is SpendCap {
  if (!isJsonObject(value) || Object.keys(value).some((k) => !SPEND_CAP_KEYS.has(k))) return false;
  const { amount, grace_period: grace, soft_thresholds: thresholds } = value;
  if (typeof amount !== 'string' || !UNSIGNED_DECIMAL_PATTERN.test(amount)) return false;
  if (grace !== undefined && !isDuration(grace)) return false;
  if (thresholds === undefined) return true;
  if (!Array.isArray(thresholds) || thresholds.length > 10 || !thresholds.every(isCapThreshold)) return false;
  return new Set(thresholds.map((t) => t.percent)).size === thresholds.length;
}

/** The open period's spend as the billing workflow evaluates it (priced by an activity); amounts in `currency`. */
export interface OpenPeriodSpend {
  currency: string;
  /** Every meter the plan charges: what a spend block refuses. */
  meters: string[];
  /** Usage so far of each charged meter that adds up (count, sum), from the real-time counters. */
  usage: Record<string, string>;
  /** What that usage costs: the invoice's usage lines, rounded as they will be. */
  spent: string;
  /** What it may reach, and which source says so; null when nothing limits the spend. */
  available: string | null;
  source: string | null;
  /** Per charged meter, the usage at which `spent` reaches `available` (see spendRunway); empty without a limit. */
  runway: Record<string, string | null>;
  /**
   * Per charged meter, the usage at which `spent` reaches the next point the workflow decides at:
   * the lowest soft threshold not notified and not reached yet, else `available`. Empty without a limit.
   */
  nextDecision: Record<string, string | null>;
  /**
   * With credits as the limit and the customer's automatic top-up enabled: its threshold. Credit
   * left (`available` − `spent`) below it, or none, buys the top-up. Absent otherwise.
   */
  autoTopUpBelow?: string;
}

/**
 * The next amount the workflow decides at: the lowest soft threshold (percent of `available`) not
 * notified and above what is spent, else `available` itself.
 */
export function nextSpendTarget(
  available: Decimal,
  spent: Decimal,
  softThresholds: readonly number[],
  notified: readonly string[],
): Decimal {
  const pending = softThresholds
    .filter((percent) => !notified.includes(`${percent}%`))
    .map((percent) => available.times(percent).div(100))
    .filter((amount) => amount.gt(spent));
  return Decimal.min(available, ...pending);
}

/** What the open period's priced usage is measured against, and by which rule. */
export interface SpendLimit {
  /** The money usage may reach; null when nothing limits the subscription's spend. */
  available: string | null;
  /** The spend cap's grace period, if any. */
  gracePeriod?: string;
  /** Percent of `available` at which to notify, once per period each. */
  softThresholds?: readonly number[];
}

export interface SpendEvaluation {
  state: LimitState;
  /** Thresholds spend has reached and that were not notified before, lowest first: `key` ("80%") and the amount it stands for. */
  newlyCrossed: Array<{ key: string; amount: string }>;
}

/**
 * The spend limit's next state: reached when usage spend is at or above what is available (the
 * money is spent: the next unit would go beyond it); then, like a `block` hard limit, a grace
 * period (fixed when it starts) and a block, or a block at once without grace. Not reached (more
 * money, a higher cap, no cap): `ok`, from any state, which is how raising the cap unblocks.
 * Soft thresholds (percent of what is available) are reached when spend is at or above them.
 */
export function evaluateSpendLimit(
  limit: SpendLimit,
  observed: { spent: string; state: LimitState; notified: readonly string[] },
  now: Date,
): SpendEvaluation {
  const spent = new Decimal(observed.spent);
  const { available } = limit;
  const newlyCrossed =
    available === null
      ? []
      : [...(limit.softThresholds ?? [])]
          .sort((a, b) => a - b)
          .map((percent) => ({ key: `${percent}%`, amount: new Decimal(available).times(percent).div(100) }))
          .filter((t) => spent.gte(t.amount) && !observed.notified.includes(t.key))
          .map((t) => ({ key: t.key, amount: t.amount.toFixed() }));
  return { state: spendStateAfter(limit, observed, now), newlyCrossed };
}

function spendStateAfter(limit: SpendLimit, observed: { spent: string; state: LimitState }, now: Date): LimitState {
  const reached = limit.available !== null && new Decimal(observed.spent).gte(limit.available);
  return limitStateAfter(
    { at_hard_limit: 'block', ...(limit.gracePeriod === undefined ? {} : { grace_period: limit.gracePeriod }) },
    observed.state,
    reached,
    now,
  );
}
