import type { Pool } from '../db/pool';
import { chargeOf, type ChargeRecord } from './store';

/**
 * An invoice's charge and every collection attempt, as the API and the CLI show them beside the
 * invoice. Read apart from InvoiceService: payments build on invoices, not the other way round.
 */
export class ChargeHistory {
  constructor(private readonly pool: Pool) {}

  /** Undefined before collection began. Call it only for an invoice the caller may see. */
  of(invoiceId: string): Promise<ChargeRecord | undefined> {
    return chargeOf(this.pool, invoiceId);
  }
}
