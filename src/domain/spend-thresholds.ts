import { z } from 'zod';
import { Decimal, UNSIGNED_DECIMAL_PATTERN } from './money';

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
