import type { Queryable } from '../db/transaction';
import type { CurrencyCode } from '../domain/currencies';
import { interimBilledLine } from '../domain/interim-billing';
import { interimInvoicesBilled, type DraftContent } from './store';

/**
 * The 'interim_billed' line of an invoice of the period: minus what the period's interim invoices
 * numbered below `beforeSequence` (all of them for the period invoice) billed. None: no line.
 */
export async function interimDeductionLines(
  db: Queryable,
  of: { customerId: string; periodStart: Date; currency: CurrencyCode; beforeSequence?: number },
): Promise<DraftContent['lines']> {
  const billed = await interimInvoicesBilled(db, of.customerId, of.periodStart, of.beforeSequence);
  const line = interimBilledLine(of.currency, billed);
  if (!line) return [];
  return [{ ...line, model: null, exactAmount: line.amount, breakdown: [], adjusts: null, segment: null }];
}
