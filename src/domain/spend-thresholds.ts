import { isJsonObject } from './input-checks';
import { Decimal, UNSIGNED_DECIMAL_PATTERN } from './money';
import type { SpendThresholds } from './spend-thresholds-schema';

/*
 * Spend thresholds of a subscription (progressive billing): when the priced usage of the open
 * period reaches one, an interim invoice bills the usage so far. "Priced usage" is the sum of the
 * period's usage lines, each rounded as on an invoice, from the period start: the base fee and the
 * minimum commitment are billed by the period invoice only (as Lago and Stripe's usage thresholds
 * do). Thresholds are cumulative within a period: "every 500.00" means at 500.00, 1000.00, …
 */

const isPositiveAmount = (v: unknown): boolean => typeof v === 'string' && UNSIGNED_DECIMAL_PATTERN.test(v) && new Decimal(v).gt(0);

/**
 * Whether `value` is spend thresholds exactly as SpendThresholdsSchema outputs them (both fields
 * present, nothing else): what the billing workflow's update accepts. The API parses with the
 * schema first; this refuses anything else (sent from the Temporal UI, say) without loading zod
 * into the workflow bundle. test/unit/workflow-input-guards.properties.test.ts holds the two together.
 */
export function isSpendThresholds(value: unknown): value is SpendThresholds {
  if (!isJsonObject(value) || Object.keys(value).some((k) => k !== 'amounts' && k !== 'every')) return false;
  const { amounts, every } = value;
  return Array.isArray(amounts) && amounts.length <= 50 && amounts.every(isPositiveAmount) && (every === null || isPositiveAmount(every));
}

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
