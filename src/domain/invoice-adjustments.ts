import type { CurrencyCode } from './currencies';
import { Decimal, ZERO, formatExact, formatMoney } from './money';
import type { PriceLine } from './pricing/schema';

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
}

export interface AdjustmentDraft {
  meter: string | null;
  quantity: string | null;
  amount: string;
  description: string;
}

/** Usage lines are matched by meter; the minimum-commitment true-up by itself; the base fee never changes. */
const keyOf = (line: { type: string; meter: string | null }) =>
  line.meter === null ? (line.type === 'base_fee' ? 'base_fee' : 'true_up') : `meter:${line.meter}`;

export function lateUsageAdjustments(input: {
  currency: CurrencyCode;
  period: { start: string; end: string };
  billed: readonly BilledLine[];
  repriced: readonly PriceLine[];
}): AdjustmentDraft[] {
  const billed = new Map<string, { amount: Decimal; quantity: Decimal }>();
  for (const line of input.billed) {
    // What interim invoices billed is deducted from the full price: it never changes with late usage.
    if (line.type === 'interim_billed') continue;
    const key = keyOf(line);
    const sum = billed.get(key) ?? { amount: ZERO, quantity: ZERO };
    billed.set(key, { amount: sum.amount.plus(line.amount), quantity: sum.quantity.plus(line.quantity ?? 0) });
  }
  const drafts: AdjustmentDraft[] = [];
  const seen = new Set<string>();
  const consider = (key: string, meter: string | null, amount: Decimal, quantity: Decimal) => {
    seen.add(key);
    if (key === 'base_fee') return;
    const before = billed.get(key) ?? { amount: ZERO, quantity: ZERO };
    const amountDelta = amount.minus(before.amount);
    const quantityDelta = quantity.minus(before.quantity);
    if (amountDelta.isZero() && quantityDelta.isZero()) return;
    const what = meter === null ? 'minimum commitment true-up' : `${meter}: ${formatExact(quantityDelta)} units`;
    drafts.push({
      meter,
      quantity: meter === null ? null : formatExact(quantityDelta),
      amount: formatMoney(amountDelta, input.currency),
      description: `Late usage for ${input.period.start} – ${input.period.end} (${what})`,
    });
  };
  for (const line of input.repriced) {
    consider(keyOf(line), line.meter, new Decimal(line.amount), new Decimal(line.quantity ?? 0));
  }
  // Billed before but absent now (a true-up that late usage made unnecessary): reverse it.
  for (const [key, sum] of billed) {
    if (!seen.has(key) && key !== 'base_fee') {
      const meter = key.startsWith('meter:') ? key.slice('meter:'.length) : null;
      if (!sum.amount.isZero() || !sum.quantity.isZero()) consider(key, meter, ZERO, ZERO);
    }
  }
  return drafts;
}
