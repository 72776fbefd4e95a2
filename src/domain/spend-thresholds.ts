import { z } from 'zod';
import { Decimal, ZERO, UNSIGNED_DECIMAL_PATTERN } from './money';
import { pricePlan } from './pricing/price-plan';
import type { PricePlan, Usage } from './pricing/schema';

/*
 * Spend thresholds of a subscription (progressive billing): when the priced usage of the open
 * period reaches one, an interim invoice bills the usage so far. "Priced usage" is the sum of the
 * period's usage lines, each rounded as on an invoice, from the period start: the base fee and the
 * minimum commitment are billed by the period invoice only (as Lago and Stripe's usage thresholds
 * do). Thresholds are cumulative within a period: "every 500.00" means at 500.00, 1000.00, …
 */

const PositiveAmount = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a decimal string such as "500.00"') })
  .regex(UNSIGNED_DECIMAL_PATTERN, { abort: true, error: 'must be a non-negative decimal string such as "500.00" (no exponent)' })
  .refine((text) => new Decimal(text).gt(0), { error: 'must be greater than 0' });

export const SpendThresholdsSchema = z
  .strictObject({
    amounts: z
      .array(PositiveAmount)
      .max(50, 'at most 50 amounts')
      .default([])
      .meta({ description: 'Priced usage of the period at which an interim invoice is issued, e.g. ["500.00", "2000.00"].' }),
    every: PositiveAmount.nullable()
      .default(null)
      .meta({ description: 'A recurring step: an interim invoice each time priced usage reaches a multiple of it. Null: none.' }),
  })
  .meta({
    id: 'SpendThresholds',
    description:
      "Progressive billing: when the open period's priced usage (usage lines, without the base fee or minimum commitment) reaches a " +
      'threshold, an interim invoice bills the usage so far; the period invoice bills the rest. Both empty: no interim invoices.',
  });
export type SpendThresholds = z.infer<typeof SpendThresholdsSchema>;

export const hasSpendThresholds = (t: SpendThresholds | undefined): t is SpendThresholds =>
  t !== undefined && (t.amounts.length > 0 || t.every !== null);

/** The highest threshold at or below `spend`; null when none is. */
export function thresholdReached(thresholds: SpendThresholds, spend: Decimal): Decimal | null {
  const candidates = thresholds.amounts.map((a) => new Decimal(a)).filter((a) => a.lte(spend));
  if (thresholds.every !== null) {
    const step = new Decimal(thresholds.every);
    const multiple = spend.div(step).floor().times(step);
    if (multiple.gt(0)) candidates.push(multiple);
  }
  return candidates.length === 0 ? null : Decimal.max(...candidates);
}

/** The lowest threshold strictly above `spend`; null when none is left. */
export function nextThreshold(thresholds: SpendThresholds, spend: Decimal): Decimal | null {
  const candidates = thresholds.amounts.map((a) => new Decimal(a)).filter((a) => a.gt(spend));
  if (thresholds.every !== null) {
    const step = new Decimal(thresholds.every);
    candidates.push(spend.div(step).floor().plus(1).times(step));
  }
  return candidates.length === 0 ? null : Decimal.min(...candidates);
}

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
