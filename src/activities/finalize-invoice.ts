import { ApplicationFailure } from '@temporalio/activity';
import { lockInvoice, setInvoiceStatus } from '../billing/invoice-store';
import type { Clock } from '../clock';
import { recordAudit } from '../db/audit';
import type { Pool } from '../db/pool';
import { inTransaction } from '../db/transaction';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import { workflowActor } from './workflow-actor';

/** Freezes a draft invoice. Idempotent: an invoice already past draft is reported as it is. */
export function createFinalizeInvoice(deps: { pool: Pool; clock: Clock }): BillingPeriodActivities['finalizeInvoice'] {
  return async ({ invoiceId }) =>
    inTransaction(deps.pool, async (client) => {
      const invoice = await lockInvoice(client, invoiceId);
      if (!invoice) throw ApplicationFailure.nonRetryable(`invoice ${invoiceId} does not exist`, 'unknown_invoice');
      if (invoice.status === 'draft') {
        await setInvoiceStatus(client, invoiceId, 'finalized', deps.clock.now());
        await recordAudit(client, {
          actor: workflowActor(),
          action: 'invoice.finalized',
          subjectType: 'invoice',
          subjectId: invoiceId,
          before: { status: 'draft' },
          after: { status: 'finalized', total: invoice.total, currency: invoice.currency },
        });
        return { invoiceId, status: 'finalized', total: invoice.total, currency: invoice.currency };
      }
      return { invoiceId, status: invoice.status, total: invoice.total, currency: invoice.currency };
    });
}
