import { couponsToApply } from '../coupons/store';
import type { Queryable } from '../db/transaction';
import type { CurrencyCode } from '../domain/currencies';
import { afterPricing, type InvoiceTotals } from '../domain/invoice-pipeline';
import type { RoundingMode } from '../domain/money';
import { activeTaxRates } from '../taxes/store';
import type { DraftContent, InvoiceLine, InvoiceLineType } from './store';

/*
 * The invoice path's side of the pipeline steps after pricing (src/domain/invoice-pipeline.ts):
 * loads the coupons that may still discount this invoice and the customer's active tax rates,
 * and turns the pure steps' results into invoice lines.
 */

type DraftLine = DraftContent['lines'][number];

/** Lines the pipeline adds after pricing, and credits (a payment); everything else is a charge (or a correction of one). */
const notChargeTypes: readonly InvoiceLineType[] = ['discount', 'tax', 'credit'];

/** A charge line: priced, a true-up, or a late-usage adjustment (what late usage and reconciliation compare). */
export const isChargeLine = <L extends Pick<InvoiceLine, 'type'>>(
  line: L,
): line is L & { type: Exclude<InvoiceLineType, 'discount' | 'tax' | 'credit'> } => !notChargeTypes.includes(line.type);

const plainLine = { model: null, quantity: null, breakdown: [], adjusts: null, segment: null };

/** Discount and tax lines for the charge lines of a draft, and its net, tax and gross. */
export async function discountAndTaxLines(
  db: Queryable,
  invoice: { customerId: string; subscriptionId: string; currency: CurrencyCode; rounding: RoundingMode; draftId: string | undefined },
  lines: readonly DraftLine[],
): Promise<{ lines: DraftLine[]; totals: InvoiceTotals }> {
  const coupons = await couponsToApply(db, invoice.customerId, invoice.subscriptionId, invoice.draftId);
  const rates = await activeTaxRates(db, invoice.customerId);
  const result = afterPricing({ currency: invoice.currency, rounding: invoice.rounding, lines, coupons, taxRates: rates });
  const byId = new Map(rates.map((r) => [r.id, r]));
  return {
    lines: [
      ...result.discounts.map((d): DraftLine => ({
        ...plainLine,
        type: 'discount',
        meter: d.meter,
        description: d.description,
        exactAmount: d.exactAmount,
        amount: d.amount,
        discount: { applicationId: d.applicationId, couponCode: d.couponCode },
        tax: null,
      })),
      ...result.taxes.map((t): DraftLine => {
        const rate = byId.get(t.taxRateId)!;
        return {
          ...plainLine,
          type: 'tax',
          meter: t.meter,
          description: t.description,
          exactAmount: t.exactAmount,
          amount: t.amount,
          discount: null,
          tax: { rateId: rate.id, code: rate.code, percentage: rate.percentage, inclusive: rate.inclusive, base: t.base },
        };
      }),
    ],
    totals: result.totals,
  };
}
