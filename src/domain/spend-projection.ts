import { Decimal, ZERO } from './money';
import { pricePlan } from './pricing/price-plan';
import type { PricePlan, Usage } from './pricing/schema';

/*
 * Spend as a function of usage: what a usage costs on a plan, and how much more of one meter
 * reaches a given spend (the decision points published for spend thresholds and spend limits).
 * Pricing runs here, in activities, never in the billing workflow's bundle: spend-thresholds.ts
 * and spend-limit.ts, which the workflow imports, stay free of it.
 */

/** The priced usage of `usage` on `plan`: its usage lines, each rounded once as the invoice rounds it. */
export function spendOf(plan: PricePlan, usage: Usage): Decimal {
  return pricePlan(plan, usage)
    .lines.filter((l) => l.type === 'usage')
    .reduce((sum, l) => sum.plus(l.amount), ZERO as Decimal);
}

/** Usage beyond this is not a decision point anyone will reach (and pricing takes at most 20 integer digits). */
const MAX_QUANTITY = new Decimal('1e18');
const STEP = new Decimal('0.000001');

/**
 * Per charged meter, the usage of that meter at which priced usage has grown by `gap` while the
 * other meters stay where they are: the billing workflow publishes it as the meter's next decision
 * point (the next threshold minus the spend so far), so API processes report at once when usage
 * comes near it. Found by doubling, then bisection to 1e-6 of a unit, and rounded down: producers
 * must hear before it is crossed. Exact for the models whose price only grows with usage (all but
 * volume tiers, whose price may fall at a tier edge: the point found is then a crossing, not
 * necessarily the first). Null for a meter that alone cannot close the gap (a free meter).
 */
export function usageToReach(plan: PricePlan, usage: Record<string, string>, gap: Decimal): Record<string, string | null> {
  const charged = [...new Set(plan.charges.map((c) => c.meter))].sort();
  const base = Object.fromEntries(charged.map((m) => [m, usage[m] ?? '0']));
  const spendNow = spendOf(plan, base);
  const points: Record<string, string | null> = {};
  for (const meter of charged) {
    const current = new Decimal(base[meter]!);
    const reaches = (q: Decimal) =>
      spendOf(plan, { ...base, [meter]: q.toFixed() })
        .minus(spendNow)
        .gte(gap);
    if (gap.lte(0)) {
      points[meter] = current.toFixed();
      continue;
    }
    let low = current;
    let high = current.plus(Decimal.max(current, new Decimal(1))).toDecimalPlaces(6, Decimal.ROUND_UP);
    while (high.lte(MAX_QUANTITY) && !reaches(high)) {
      low = high;
      high = current.plus(high.minus(current).times(2));
    }
    if (high.gt(MAX_QUANTITY)) {
      points[meter] = null;
      continue;
    }
    // Quantities stay on a 1e-6 grid (prices take at most 20 decimals): the loop ends when the grid does.
    while (high.minus(low).gt(STEP)) {
      const middle = low.plus(high).div(2).toDecimalPlaces(6, Decimal.ROUND_DOWN);
      if (middle.lte(low)) break;
      if (reaches(middle)) high = middle;
      else low = middle;
    }
    points[meter] = low.toDecimalPlaces(6, Decimal.ROUND_DOWN).toFixed();
  }
  return points;
}

/** Beyond this many units a meter's runway is unbounded (null): a free meter, or a cap too far to matter (quantities have at most 20 digits). */
const MAX_RUNWAY = new Decimal('1e18');

/**
 * For each charged meter, the usage of that meter (whole units, rounded up) at which the period's
 * usage spend reaches `available`, the other meters staying where they are: the decision point
 * for producers to report at once. The current usage when spend has already reached it; null when
 * no amount of this meter alone gets there. Searched by bisection over the same rounded lines the
 * invoice shows, so tiers, packages and flat fees count as they will be billed; with volume tiers,
 * whose price can fall as usage grows, it is one crossing, not necessarily the first.
 */
export function spendRunway(plan: PricePlan, usage: Readonly<Record<string, string>>, available: Decimal): Record<string, string | null> {
  const meters = [...new Set(plan.charges.map((c) => c.meter))];
  const current = Object.fromEntries(meters.map((m) => [m, usage[m] ?? '0']));
  const reached = (meter: string, quantity: Decimal) => spendOf(plan, { ...current, [meter]: quantity.toFixed() }).gte(available);
  return Object.fromEntries(
    meters.map((meter) => {
      const from = new Decimal(current[meter]!);
      if (reached(meter, from)) return [meter, from.toFixed()];
      // Whole units above the current usage: lo never reaches, hi does.
      let lo = from.floor();
      let step = Decimal.max(1, lo);
      let hi = lo.plus(step);
      for (;;) {
        if (hi.gt(MAX_RUNWAY)) return [meter, null];
        if (reached(meter, hi)) break;
        lo = hi;
        step = step.times(2);
        hi = lo.plus(step);
      }
      while (hi.minus(lo).gt(1)) {
        const mid = lo.plus(hi).div(2).floor();
        if (reached(meter, mid)) hi = mid;
        else lo = mid;
      }
      return [meter, hi.toFixed()];
    }),
  );
}
