import assert from 'node:assert/strict';
import { Decimal, ZERO, roundToMinor, type Decimal as DecimalValue } from '../../src/domain/money';
import { periodAt, periodIndex } from '../../src/domain/periods';
import type { BillingInterval } from '../../src/domain/periods-schema';
import type { PlanTimeline } from '../../src/domain/plan-segments';
import { pricePlan, type Charge, type PricePlan } from '../../src/domain/pricing';

/*
 * What a subscription's invoices must add up to, recomputed independently of the segment code
 * (src/domain/plan-segments.ts, segment-pricing.ts, proration.ts): the plan of each event found by
 * replaying the changes, each event priced at the margin of its plan's ladder — price(position +
 * q) − price(position) — in time order, fixed amounts prorated by hand. Shared by the pure
 * property test and the one against Postgres.
 */

export interface TimelineSubscription {
  /** The subscription start: billing begins here. */
  anchor: number;
  /** Periods are derived from it (a billing anchor); absent: from the start. */
  billingAnchor?: number;
  interval: BillingInterval;
  timeline: PlanTimeline;
  /** Billing ends here (a cancellation); otherwise at the horizon. */
  cancelAt: number | undefined;
  /**
   * When the workflow learnt of the cancellation; absent: at once. A period closed before then
   * (its end plus ALLOWED_LATENESS_MS) was invoiced in full, even when the cancellation falls inside it.
   */
  cancelLearntAt?: number;
  horizon: number;
  events: Array<{ at: number; meter: string; quantity: string }>;
}

export type NamedPlan = PricePlan & { id: string };

export const inSpan = (at: number, start: number, end: number) => start <= at && at < end;

/** The allowed lateness of the workflows modelled: a period closes this long after its end. */
export const ALLOWED_LATENESS_MS = 300_000;

/** The periods of the billing anchor's schedule from the one holding the start, up to `until`. */
function scheduledPeriods(s: TimelineSubscription, until: number): Array<{ start: number; end: number }> {
  const anchor = s.billingAnchor ?? s.anchor;
  const periods = [];
  for (let i = periodIndex(anchor, s.interval, s.anchor); ; i++) {
    const p = periodAt(anchor, s.interval, i);
    if (p.start.getTime() >= until) return periods;
    periods.push({ start: p.start.getTime(), end: p.end.getTime() });
  }
}

/**
 * Where billing ends: the cancellation, or the horizon; but never before the end of a period that
 * closed before the cancellation was learnt (that invoice stands, and the next run bills nothing).
 */
export function billingStop(s: TimelineSubscription): number {
  let stop = Math.min(s.cancelAt ?? Infinity, s.horizon);
  if (s.cancelLearntAt === undefined) return stop;
  for (const p of scheduledPeriods(s, s.horizon)) {
    if (p.end + ALLOWED_LATENESS_MS <= s.cancelLearntAt && p.end <= s.horizon) stop = Math.max(stop, p.end);
  }
  return stop;
}

/**
 * The periods a subscription bills: `full` the period of its billing anchor's schedule, billed
 * from `start` (the subscription start in the first one, else the period start) to `end` (the
 * period end, or the stop in the last one).
 */
export function billedPeriods(s: TimelineSubscription): Array<{ full: { start: number; end: number }; start: number; end: number }> {
  const stop = billingStop(s);
  return scheduledPeriods(s, stop)
    .map((full) => ({ full, start: Math.max(full.start, s.anchor), end: Math.min(full.end, stop) }))
    .filter((p) => p.start < p.end);
}

/** The plan in force at `at`, by replaying the changes one by one. */
function oraclePlanAt(s: TimelineSubscription, at: number): string {
  return s.timeline.changes.reduce((plan, c) => (c.at <= at ? c.toPlan : plan), s.timeline.initialPlan);
}

function chargeAmount(charge: Charge, q: DecimalValue): DecimalValue {
  return new Decimal(pricePlan({ currency: 'USD', charges: [charge] }, { [charge.meter]: q.toFixed() }).lines[0]!.exact_amount);
}

/** The sum of the subscription's invoices, to the cent, for USD plans. */
export function oracleTotal(s: TimelineSubscription, planNamed: (code: string) => NamedPlan): DecimalValue {
  let total = ZERO;
  for (const { full, start, end } of billedPeriods(s)) {
    // Stretches on one plan: cut at every change instant, neighbours on the same plan joined.
    const cuts = [start, ...s.timeline.changes.map((c) => c.at).filter((at) => at > start && at < end), end].sort((a, b) => a - b);
    const stretches: Array<{ start: number; end: number; plan: string }> = [];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const [a, b] = [cuts[i]!, cuts[i + 1]!];
      if (a === b) continue;
      const plan = oraclePlanAt(s, a);
      const last = stretches[stretches.length - 1];
      if (last && last.plan === plan) last.end = b;
      else stretches.push({ start: a, end: b, plan });
    }
    const periodUse: Record<string, DecimalValue> = {};
    for (const stretch of stretches) {
      const plan = planNamed(stretch.plan);
      const round = (x: DecimalValue) => roundToMinor(x, 'USD', plan.rounding ?? 'half_up');
      const length = full.end - full.start;
      const covered = stretch.end - stretch.start;
      const fixedOf = (amount: string | undefined) => {
        if (amount === undefined) return ZERO;
        if (covered === length || plan.proration === 'full') return new Decimal(amount);
        return plan.proration === 'none' ? ZERO : new Decimal(amount).times(covered).div(length);
      };
      const baseFee = round(fixedOf(plan.base_fee));
      let charges = ZERO;
      for (const charge of plan.charges) {
        const shared = plan.tiers_across_segments !== 'per_segment';
        let position = shared ? (periodUse[charge.meter] ?? ZERO) : ZERO;
        let exact = ZERO;
        const events = s.events
          .filter((e) => e.meter === charge.meter && inSpan(e.at, stretch.start, stretch.end))
          .sort((a, b) => a.at - b.at);
        for (const e of events) {
          assert.equal(oraclePlanAt(s, e.at), stretch.plan);
          const q = new Decimal(e.quantity);
          if (q.isZero()) continue;
          exact = exact.plus(chargeAmount(charge, position.plus(q)).minus(chargeAmount(charge, position)));
          position = position.plus(q);
        }
        charges = charges.plus(round(exact));
      }
      const invoiced = baseFee.plus(charges);
      const commitment = fixedOf(plan.minimum_commitment);
      const trueUp = plan.minimum_commitment !== undefined && commitment.gt(invoiced) ? round(commitment.minus(invoiced)) : ZERO;
      total = total.plus(invoiced).plus(trueUp);
      // The ladder position counts the units billed on the meter: units of a meter the plan does not charge were free.
      const charged = new Set(plan.charges.map((c) => c.meter));
      for (const e of s.events) {
        if (charged.has(e.meter) && inSpan(e.at, stretch.start, stretch.end)) {
          periodUse[e.meter] = (periodUse[e.meter] ?? ZERO).plus(e.quantity);
        }
      }
    }
  }
  return total;
}
