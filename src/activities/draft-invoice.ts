import { ApplicationFailure } from '@temporalio/activity';
import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import { PricingError } from '../domain/pricing/price-plan';
import { TaxInputError } from '../domain/taxes';
import { InvoiceInputError } from '../invoices/builder';
import { InvoiceService } from '../invoices/service';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import { workflowActor } from './workflow-actor';

/**
 * Drafts the invoice of a closed period (InvoiceService.draft); data no retry can fix (a missing
 * plan or meter, an unpriceable plan, inclusive and exclusive tax rates mixed) fails the activity for good.
 */
export function createDraftInvoice(deps: { pool: Pool; clock: Clock; lookbackInvoices: number }): BillingPeriodActivities['draftInvoice'] {
  const invoices = new InvoiceService(deps.pool, deps.clock);
  return async (input) => {
    try {
      return await invoices.draft(input, deps.lookbackInvoices, workflowActor());
    } catch (err) {
      if (err instanceof InvoiceInputError || err instanceof PricingError || err instanceof TaxInputError)
        throw ApplicationFailure.nonRetryable(err.message, err.name);
      throw err;
    }
  };
}
