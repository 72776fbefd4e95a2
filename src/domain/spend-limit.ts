import { z } from 'zod';
import { quote } from './edge-schemas';
import { Decimal, UNSIGNED_DECIMAL_PATTERN, isDecimalString } from './money';
import { IsoDurationSchema } from './periods';
import { limitStateAfter, type LimitState } from './quota-policy';

/*
 * Real-time spend limits: how much the open period's priced usage may reach (a spend cap on the
 * subscription; with prepaid credits, the balance), how far each charged meter can go before it
 * gets there (its runway), and the limit's state, which follows the hard-limit state machine of
 * the quota policy: reached → grace period → blocked. Pure: the billing workflow evaluates it with
 * its own clock, the pricing activity computes spend and runway.
 */

export const SpendCapSchema = z
  .strictObject({
    amount: z
      .string({
        error: (issue) =>
          issue.input === undefined
            ? 'is required'
            : 'must be a decimal string such as "250.00"; JSON numbers are refused to keep money exact',
      })
      .regex(UNSIGNED_DECIMAL_PATTERN, {
        error: (issue) =>
          typeof issue.input === 'string' && isDecimalString(issue.input)
            ? `must not be negative (got ${quote(issue.input)})`
            : `${quote(issue.input)} is not a decimal string: use plain digits such as "250.00"`,
      })
      .meta({
        description:
          "In the plan's currency (at most its minor-unit digits), per billing period. Once the period's priced usage reaches it, usage of charged meters is refused with 402.",
        example: '250.00',
      }),
    grace_period: IsoDurationSchema.optional().meta({
      description: 'How long usage is still accepted once the cap is reached, as for a hard limit. Absent: refused at once.',
      example: 'PT1H',
    }),
    soft_thresholds: z
      .array(
        z.strictObject({
          percent: z
            .number({ error: 'must be a number of percent such as 80' })
            .positive('must be greater than 0')
            .max(100, 'must be at most 100'),
        }),
      )
      .max(10, 'at most 10 thresholds')
      .optional()
      .meta({ description: 'Percent of the cap: each sends a spend_threshold_crossed webhook once per period when spend reaches it.' }),
  })
  .superRefine((cap, ctx) => {
    const seen = new Set<number>();
    cap.soft_thresholds?.forEach((t, i) => {
      if (typeof t?.percent !== 'number') return;
      if (seen.has(t.percent)) ctx.addIssue({ code: 'custom', path: ['soft_thresholds', i], message: `duplicates ${t.percent}%` });
      seen.add(t.percent);
    });
  })
  .meta({ id: 'SpendCap', description: 'A limit on what one billing period of usage may cost.' });

export type SpendCap = z.infer<typeof SpendCapSchema>;

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
