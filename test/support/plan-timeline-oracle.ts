import assert from 'node:assert/strict';
import { Decimal, ZERO, roundToMinor, type Decimal as DecimalValue } from '../../src/domain/money';
import { periodAt } from '../../src/domain/periods';
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
  anchor: number;
  interval: BillingInterval;
  timeline: PlanTimeline;
  /** Billing ends here (a cancellation); otherwise at the horizon. */
  cancelAt: number | undefined;
  horizon: number;
  events: Array<{ at: number; meter: string; quantity: string }>;
}

export type NamedPlan = PricePlan & { id: string };

export const inSpan = (at: number, start: number, end: number) => start <= at && at < end;

/** The periods a subscription bills: from its anchor until the cancellation or the horizon, the last one cut short. */
export function billedPeriods(s: TimelineSubscription): Array<{ full: { start: number; end: number }; end: number }> {
  const stop = Math.min(s.cancelAt ?? Infinity, s.horizon);
  const periods = [];
  for (let i = 0; ; i++) {
    const p = periodAt(s.anchor, s.interval, i);
    if (p.start.getTime() >= stop) break;
    const full = { start: p.start.getTime(), end: p.end.getTime() };
    periods.push({ full, end: Math.min(full.end, stop) });
  }
  return periods;
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
  for (const { full, end } of billedPeriods(s)) {
    // Stretches on one plan: cut at every change instant, neighbours on the same plan joined.
    const cuts = [full.start, ...s.timeline.changes.map((c) => c.at).filter((at) => at > full.start && at < end), end].sort(
      (a, b) => a - b,
    );
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
