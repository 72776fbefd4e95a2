import { WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { collectionWorkflowIdFor, type InvoiceCollectionResult } from '../../src/workflows/invoice-collection';
import { waitFor } from './wait-for';

/** An invoice collection's result, or what the first charge attempt left in Postgres (the invoice's status). */
export type CollectionOutcome = InvoiceCollectionResult | { outcome: string; attempts: number };

/**
 * How an invoice's collection ended. The billing workflow makes the first charge attempt when it
 * issues the invoice (issueAndCharge) and starts a collection workflow only for what that attempt
 * left (a decline: dunning); then its result is the answer. Otherwise the first attempt settled
 * it, and Postgres says how: paid by a charge, or settled without one (`not_due`: nothing to
 * collect). Waits while the invoice is still being collected.
 */
export async function collectionOf(client: Client, pool: Pool, invoiceId: string): Promise<CollectionOutcome> {
  const found = await waitFor(
    async () => {
      const handle: WorkflowHandle = client.workflow.getHandle(collectionWorkflowIdFor(invoiceId));
      try {
        await handle.describe();
        return { handle, settled: undefined };
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
      const { rows } = await pool.query<{ status: string; charges: number }>(
        `select status, (select count(*)::int from charge_attempts where invoice_id = $1) as charges from invoices where id = $1`,
        [invoiceId],
      );
      const invoice = rows[0];
      if (!invoice || invoice.status === 'draft' || invoice.status === 'finalized') return undefined;
      return {
        settled: { outcome: invoice.status === 'paid' && invoice.charges === 0 ? 'not_due' : invoice.status, attempts: 1 as const },
      };
    },
    { description: `the collection of ${invoiceId}` },
  );
  return found.handle ? ((await found.handle.result()) as InvoiceCollectionResult) : found.settled;
}
