import type { CurrencyCode } from './currencies';
import { type Decimal, ZERO, formatMoney } from './money';
import type { PriceLine } from './pricing/schema';

/*
 * Progressive billing's deduction, the invoice pipeline's step after the minimum commitment
 * (priced charges → minimum commitment → interim_billed → discounts → taxes → credits). Every invoice of a period with interim invoices prices the
 * period from its start again, so graduated tiers continue where they were, and deducts what the
 * period's earlier interim invoices billed, as one 'interim_billed' line. Those totals are sums of
 * rounded lines, so after interim invoices 1…n and the period invoice the customer has paid
 * exactly the period's full price: no rounding drift, whatever the number of interim invoices.
 *
 *   interim k   = usage lines of [start, t_k)          − (total_1 + … + total_{k−1})
 *   period      = full price of [start, end) (+ fees)  − (total_1 + … + total_n)
 */

/** An earlier interim invoice of the period, as the deduction needs it. */
export interface InterimInvoiceBilled {
  sequence: number;
  /** Its total, rounded to the currency's minor unit. */
  total: string;
}

export interface InterimBilledLine {
  type: 'interim_billed';
  meter: null;
  quantity: null;
  description: string;
  /** Negative (or zero): what was billed already. */
  amount: string;
}

/** The deduction of the earlier interim invoices; null when there are none. */
export function interimBilledLine(currency: CurrencyCode, earlier: readonly InterimInvoiceBilled[]): InterimBilledLine | null {
  if (earlier.length === 0) return null;
  const billed = earlier.reduce((sum, i) => sum.plus(i.total), ZERO as Decimal);
  const numbers = [...earlier].sort((a, b) => a.sequence - b.sequence).map((i) => `#${i.sequence}`);
  return {
    type: 'interim_billed',
    meter: null,
    quantity: null,
    description: `Billed on interim invoice${numbers.length > 1 ? 's' : ''} ${numbers.join(', ')} of this period`,
    amount: formatMoney(ZERO.minus(billed), currency),
  };
}

/**
 * Where an interim invoice of the period starting at `periodStart` is cut, asked for at `until`:
 * never after the end of what the period bills (`billingEndsAt`, a recorded cancellation), so the
 * period invoice, which bills [start, cancellation), deducts only usage it bills itself and cannot
 * go negative. The workflow learns of a cancellation only after it is recorded, and its cut is its
 * own clock's time; the cancellation's is the service's.
 */
export function interimCut(periodStart: Date, until: Date, billingEndsAt: Date | null): Date {
  const end = billingEndsAt && billingEndsAt < until ? billingEndsAt : until;
  return end < periodStart ? periodStart : end;
}

/** What an interim invoice bills of the priced period so far: its usage lines (fixed fees wait for the period invoice). */
export const interimUsageLines = (lines: readonly PriceLine[]): PriceLine[] => lines.filter((l) => l.type === 'usage');

/** An invoice's total: the sum of its rounded lines. */
export const totalOf = (lines: readonly { amount: string }[]): Decimal => lines.reduce((sum, l) => sum.plus(l.amount), ZERO as Decimal);
