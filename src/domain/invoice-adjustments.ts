import type { CurrencyCode } from './currencies';
import { Decimal, ZERO, formatExact, formatMoney } from './money';
import type { PriceLine } from './pricing/schema';
import type { SegmentRef } from './segment-pricing';

/*
 * Late usage after an invoice was finalized. The finalized invoice never changes; instead its
 * period is priced again on its own plan with the usage now stored, and every difference from
 * what was billed for it so far (its own lines plus earlier adjustments) becomes an adjustment
 * line on a later invoice. Differences are taken between rounded amounts, so adjustments add up
 * to exactly what the repriced invoice would have said: no rounding drift across corrections.
 */

/** A line billed for the earlier period: on its invoice, or an adjustment made since. */
export interface BilledLine {
  type: PriceLine['type'] | 'adjustment' | 'interim_billed';
  meter: string | null;
  quantity: string | null;
  amount: string;
  /** The segment of the period it billed when plan changes split the period; null or absent otherwise. */
  segment?: SegmentRef | null;
}

export interface AdjustmentDraft {
  meter: string | null;
  quantity: string | null;
  amount: string;
  description: string;
  segment: SegmentRef | null;
}

type Keyed = { type: string; meter: string | null; segment?: SegmentRef | null };

/**
 * Usage lines are matched by meter and segment; the minimum-commitment true-up by its segment;
 * the base fee never changes. A segment is named by its plan and start: a period's plan changes
 * are recorded before its invoice, so its segments are the same at every repricing.
 */
function keyOf(line: Keyed): string {
  const what = line.meter === null ? (line.type === 'base_fee' ? 'base_fee' : 'true_up') : `meter:${line.meter}`;
  return line.segment ? `${what}@${line.segment.planCode}@${line.segment.start}` : what;
}

export function lateUsageAdjustments(input: {
  currency: CurrencyCode;
  period: { start: string; end: string };
  billed: readonly BilledLine[];
  repriced: readonly (PriceLine & { segment?: SegmentRef | null })[];
}): AdjustmentDraft[] {
  const billed = new Map<string, { amount: Decimal; quantity: Decimal; line: Keyed }>();
  for (const line of input.billed) {
    // What interim invoices billed is deducted from the full price: it never changes with late usage.
    if (line.type === 'interim_billed') continue;
    const key = keyOf(line);
    const sum = billed.get(key) ?? { amount: ZERO, quantity: ZERO, line };
    billed.set(key, { amount: sum.amount.plus(line.amount), quantity: sum.quantity.plus(line.quantity ?? 0), line });
  }
  const drafts: AdjustmentDraft[] = [];
  const seen = new Set<string>();
  const consider = (line: Keyed, amount: Decimal, quantity: Decimal) => {
    const key = keyOf(line);
    const { meter } = line;
    const segment = line.segment ?? null;
    seen.add(key);
    if (line.type === 'base_fee') return;
    const before = billed.get(key) ?? { amount: ZERO, quantity: ZERO };
    const amountDelta = amount.minus(before.amount);
    const quantityDelta = quantity.minus(before.quantity);
    if (amountDelta.isZero() && quantityDelta.isZero()) return;
    const what = meter === null ? 'minimum commitment true-up' : `${meter}: ${formatExact(quantityDelta)} units`;
    const part = segment ? `, segment on plan ${segment.planCode} ${segment.start} – ${segment.end}` : '';
    drafts.push({
      meter,
      quantity: meter === null ? null : formatExact(quantityDelta),
      amount: formatMoney(amountDelta, input.currency),
      description: `Late usage for ${input.period.start} – ${input.period.end} (${what}${part})`,
      segment,
    });
  };
  for (const line of input.repriced) {
    consider(line, new Decimal(line.amount), new Decimal(line.quantity ?? 0));
  }
  // Billed before but absent now (a true-up that late usage made unnecessary): reverse it.
  for (const [key, sum] of billed) {
    if (!seen.has(key) && sum.line.type !== 'base_fee') {
      // An adjustment line keeps the meter and segment of what it adjusts; a null meter is the true-up.
      const line = { ...sum.line, type: sum.line.meter === null ? 'minimum_commitment_true_up' : 'usage' };
      if (!sum.amount.isZero() || !sum.quantity.isZero()) consider(line, ZERO, ZERO);
    }
  }
  return drafts;
}
