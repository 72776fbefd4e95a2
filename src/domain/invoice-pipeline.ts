import type { CurrencyCode } from './currencies';
import { applyDiscounts, type CouponToApply, type DiscountLine } from './discounts';
import { type Decimal, ZERO, formatMoney, type RoundingMode } from './money';
import { applyTaxes, type TaxLine, type TaxRateToApply } from './taxes';

/*
 * The invoice after pricing: one ordered pipeline of pure steps, each in its own file, each adding
 * explainable lines rounded once through src/domain/money.ts.
 *
 *   1. priced charges      base fee and usage per charge model (src/domain/pricing/price-plan.ts)
 *   2. minimum commitment  true-up to the commitment, on the rounded charges (same file)
 *   3. interim billed      what interim invoices of the period already billed (negative lines); interim
 *                          invoices bill usage only, so this line is neither discounted nor taxed: the
 *                          period invoice discounts and taxes the whole period's charges
 *   4. discounts           coupons, on the period's charges including the true-up (./discounts.ts)
 *   5. taxes               on the net after discounts (./taxes.ts)
 *   6. prepaid credits     drawn down at finalization, on the gross (negative lines)
 *   7. amount due          what remains to collect
 *
 * Why this order: the minimum is a commitment to spend, so a coupon reduces what is paid, not what
 * counts towards the commitment (a 100 % coupon must not be topped back up by the true-up); taxes
 * are due on the price actually charged, so after discounts (VAT and US sales tax both tax the
 * discounted price); prepaid credits are a means of payment, so they pay the gross including tax.
 * Peers differ: some apply discounts before the minimum (Lago applies coupons after it, as here).
 *
 * The invoice adds up line by line: gross (the total) is the sum of every line except inclusive
 * tax lines, which state tax already contained in the others.
 */

/** Any invoice line, as far as the totals are concerned. */
export interface PipelineLine {
  type: string;
  meter: string | null;
  amount: string;
  /** Tax lines only: whether the tax is contained in the other lines. */
  inclusive?: boolean | null;
}

export interface InvoiceTotals {
  /** Everything before tax, after discounts. */
  net: string;
  tax: string;
  /** net + tax: the invoice total. */
  gross: string;
}

export const isTaxLine = (line: { type: string }) => line.type === 'tax';
export const isInterimBilledLine = (line: { type: string }) => line.type === 'interim_billed';

/** Net, tax and gross of lines as they stand; the gross is the sum of the lines that add. */
export function invoiceTotals(currency: CurrencyCode, lines: readonly PipelineLine[]): InvoiceTotals {
  let gross = ZERO as Decimal;
  let tax = ZERO as Decimal;
  for (const line of lines) {
    if (isTaxLine(line)) tax = tax.plus(line.amount);
    // An inclusive tax is already inside the other lines' amounts.
    if (!(isTaxLine(line) && line.inclusive)) gross = gross.plus(line.amount);
  }
  return { net: formatMoney(gross.minus(tax), currency), tax: formatMoney(tax, currency), gross: formatMoney(gross, currency) };
}

export interface AfterPricing {
  discounts: DiscountLine[];
  taxes: TaxLine[];
  totals: InvoiceTotals;
}

/**
 * Steps 4 and 5 over the lines of steps 1–3 (and any late-usage adjustments): discount lines,
 * then tax lines over everything including the discounts, then the totals.
 */
export function afterPricing(input: {
  currency: CurrencyCode;
  rounding: RoundingMode;
  lines: readonly PipelineLine[];
  coupons: readonly CouponToApply[];
  taxRates: readonly TaxRateToApply[];
}): AfterPricing {
  const { currency, rounding } = input;
  const discounts = applyDiscounts({ currency, rounding, lines: input.lines, coupons: input.coupons });
  // Interim invoices bill usage before discounts and taxes; the period invoice discounts and taxes
  // the whole period's charges, so what interim invoices billed is neither discounted nor taxed.
  const taxable = input.lines.filter((line) => !isInterimBilledLine(line));
  const taxes = applyTaxes({ currency, rounding, lines: [...taxable, ...discounts], rates: input.taxRates });
  return {
    discounts,
    taxes,
    totals: invoiceTotals(currency, [...input.lines, ...discounts, ...taxes]),
  };
}
