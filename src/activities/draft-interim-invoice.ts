import { ApplicationFailure } from '@temporalio/activity';
import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import { PricingError } from '../domain/pricing/price-plan';
import { InvoiceInputError } from '../invoices/builder';
import { InvoiceService } from '../invoices/service';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import { workflowActor } from './workflow-actor';

/**
 * Drafts an interim invoice at a spend threshold (InvoiceService.draftInterim), idempotent on its
 * natural key; data no retry can fix (a missing plan or meter, an unpriceable plan) fails it for good.
 */
export function createDraftInterimInvoice(deps: { pool: Pool; clock: Clock }): BillingPeriodActivities['draftInterimInvoice'] {
  const invoices = new InvoiceService(deps.pool, deps.clock);
  return async (input) => {
    try {
      return await invoices.draftInterim(input, workflowActor());
    } catch (err) {
      if (err instanceof InvoiceInputError || err instanceof PricingError) throw ApplicationFailure.nonRetryable(err.message, err.name);
      throw err;
    }
  };
}
