import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import { defaultIssuer, type InvoiceIssuer } from '../invoices/issuer';
import { InvoiceService } from '../invoices/service';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import { nonRetryableFailure } from './refusal-failure';
import { workflowActor } from './workflow-actor';

/**
 * Freezes a draft invoice and gives it its number. Idempotent: an invoice already past draft is
 * reported as it is, without a second number. `issuer` unset: the configuration's defaults (tests).
 */
export function createFinalizeInvoice(deps: {
  pool: Pool;
  clock: Clock;
  issuer?: InvoiceIssuer;
}): BillingPeriodActivities['finalizeInvoice'] {
  const invoices = new InvoiceService(deps.pool, deps.clock);
  const issuer = deps.issuer ?? defaultIssuer();
  return async ({ invoiceId }) => {
    const finalized = await invoices.finalize(invoiceId, workflowActor(), issuer);
    if (!finalized.ok) throw nonRetryableFailure(finalized);
    return finalized.value;
  };
}
