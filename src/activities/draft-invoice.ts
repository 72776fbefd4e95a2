import { ApplicationFailure } from '@temporalio/activity';
import { buildInvoice, InvoiceInputError } from '../billing/invoice-builder';
import { findInvoice, saveDraft } from '../billing/invoice-store';
import type { Clock } from '../clock';
import { recordAudit } from '../db/audit';
import type { Pool } from '../db/pool';
import { inTransaction } from '../db/transaction';
import { PricingError } from '../domain/pricing/price-plan';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import { workflowActor } from './workflow-actor';

/**
 * The invoice of a closed period, as a draft: usage recomputed from the stored events for
 * [start, end), priced on the plan, with adjustment lines for late usage of earlier invoices.
 * Saved under (customer, period start), so running it again rewrites the same draft (picking up
 * events stored since) and, once the invoice is finalized, returns it untouched.
 */
export function createDraftInvoice(deps: { pool: Pool; clock: Clock; lookbackInvoices: number }): BillingPeriodActivities['draftInvoice'] {
  return async (input) => {
    const period = {
      subscriptionId: input.subscriptionId,
      customerId: input.customerId,
      planCode: input.planCode,
      periodStart: new Date(input.periodStart),
      periodEnd: new Date(input.periodEnd),
    };
    try {
      return await inTransaction(deps.pool, async (client) => {
        // Serializes drafts of one customer: adjustments read what other drafts of theirs billed.
        await client.query('select pg_advisory_xact_lock(hashtext($1))', [`invoice:${input.customerId}`]);
        const existing = await findInvoice(client, period.customerId, period.periodStart);
        if (existing && existing.status !== 'draft') return { invoiceId: existing.id };
        const draft = await buildInvoice(client, period, { lookbackInvoices: deps.lookbackInvoices, draftId: existing?.id });
        const saved = await saveDraft(client, draft, deps.clock.now());
        // Finalized meanwhile (finalize takes the row lock, not this one): that invoice stands.
        if (!saved) return { invoiceId: existing!.id };
        await recordAudit(client, {
          actor: workflowActor(),
          action: saved.created ? 'invoice.drafted' : 'invoice.redrafted',
          subjectType: 'invoice',
          subjectId: saved.id,
          details: { customer_id: draft.customerId, period_start: input.periodStart, period_end: input.periodEnd },
          after: { total: draft.total, currency: draft.currency, usage: draft.usage, lines: draft.lines.length },
        });
        return { invoiceId: saved.id };
      });
    } catch (err) {
      if (err instanceof InvoiceInputError || err instanceof PricingError) throw ApplicationFailure.nonRetryable(err.message, err.name);
      throw err;
    }
  };
}
