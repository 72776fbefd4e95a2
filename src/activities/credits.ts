import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Clock } from '../clock';
import { CreditService } from '../credits/service';
import { getInvoice } from '../invoices/store';
import { temporalCreditBalanceWatcher } from '../credits/temporal-balance-watcher';
import { temporalCreditExpiryTimers } from '../credits/temporal-expiry-timers';
import type { Pool } from '../db/pool';
import type { AutoTopUpOutcome } from '../domain/credit-drawdown';
import type { CurrencyCode } from '../domain/currencies';
import type { Result } from '../domain/result';
import type { PaymentProvider } from '../provider/payment-provider';
import type { SpendTopUpActivities } from '../workflows/billing-period';
import type { CreditExpiryActivities } from '../workflows/credit-expiry';
import type { InvoiceCollectionActivities } from '../workflows/invoice-collection';
import { nonRetryableFailure } from './refusal-failure';
import { workflowActor } from './workflow-actor';

/**
 * Prepaid credits for the workflows: a grant's expiry when its timer fires, and the automatic
 * top-up after each of its triggers (an invoice drew credits, an expiry, a credit_only period's
 * runway ran low). An unknown provider outcome fails the top-up and Temporal retries it with the
 * same grant, so with the same idempotency key.
 */
export function createCreditActivities(deps: {
  pool: Pool;
  clock: Clock;
  provider: PaymentProvider;
}): CreditExpiryActivities & Pick<InvoiceCollectionActivities, 'autoTopUpCredits'> & SpendTopUpActivities {
  const credits = new CreditService({
    pool: deps.pool,
    clock: deps.clock,
    provider: deps.provider,
    // A grant bought here that expires gets its timer from the worker's own Temporal client.
    timers: {
      schedule: (grant) =>
        temporalCreditExpiryTimers({ client: Context.current().client, taskQueue: Context.current().info.taskQueue }).schedule(grant),
    },
    watcher: { grew: (customer) => temporalCreditBalanceWatcher(Context.current().client).grew(customer) },
  });
  return {
    expireCreditGrant: ({ grantId }) => credits.expire(grantId, workflowActor()),
    autoTopUpAfterExpiry: async ({ grantId }) => outcomeOf(await credits.autoTopUpAfterExpiry(grantId, workflowActor())),
    autoTopUpForSpend: async (trigger) =>
      outcomeOf(await credits.autoTopUpForSpend({ ...trigger, currency: trigger.currency as CurrencyCode }, workflowActor())),
    autoTopUpCredits: async ({ invoiceId }) => {
      const invoice = await getInvoice(deps.pool, invoiceId);
      if (!invoice) throw ApplicationFailure.nonRetryable(`Invoice ${invoiceId} does not exist.`, 'unknown_invoice');
      return outcomeOf(await credits.autoTopUp(invoice, workflowActor()));
    },
  };
}

/** A top-up the provider rejected for good fails without retries; anything else is the outcome. */
function outcomeOf(result: Result<AutoTopUpOutcome, 'provider_rejected'>): AutoTopUpOutcome {
  if (!result.ok)
    throw result.reason === 'provider_rejected'
      ? ApplicationFailure.nonRetryable(result.message, result.reason)
      : nonRetryableFailure(result);
  return result.value;
}
