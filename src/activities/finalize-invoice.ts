import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import { InvoiceService } from '../invoices/service';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import { nonRetryableFailure } from './refusal-failure';
import { workflowActor } from './workflow-actor';

/** Freezes a draft invoice. Idempotent: an invoice already past draft is reported as it is. */
export function createFinalizeInvoice(deps: { pool: Pool; clock: Clock }): BillingPeriodActivities['finalizeInvoice'] {
  const invoices = new InvoiceService(deps.pool, deps.clock);
  return async ({ invoiceId }) => {
    const finalized = await invoices.finalize(invoiceId, workflowActor());
    if (!finalized.ok) throw nonRetryableFailure(finalized);
    return finalized.value;
  };
}
