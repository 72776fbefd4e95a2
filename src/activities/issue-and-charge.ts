import { ApplicationFailure, Context, log } from '@temporalio/activity';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import type { InvoiceCollectionActivities } from '../workflows/invoice-collection';

/** Well inside the billing workflow's heartbeat timeout for this activity (1 minute). */
const HEARTBEAT_MS = 20_000;

/**
 * A period close (or an interim invoice) in one activity task instead of four activities and a
 * child workflow: the same draft, finalize, automatic top-up and first charge activities, run in
 * turn. Each is idempotent on its business key (invoice: customer + period start; top-up: the
 * invoice; charge: invoice + attempt 1, the provider idempotency key), so a retry after a crash at
 * any point converges on one invoice and at most one charge.
 *
 * A top-up that failed for good is logged and collection goes on, as in the collection workflow.
 * A first charge that failed for good (the provider rejected it, or the invoice cannot be charged)
 * does not fail the close: it is reported `rejected`, and the collection workflow tries attempt 1
 * again, where the failure stays visible as before.
 */
export function createIssueAndCharge(steps: {
  draftInvoice: BillingPeriodActivities['draftInvoice'];
  draftInterimInvoice: BillingPeriodActivities['draftInterimInvoice'];
  finalizeInvoice: BillingPeriodActivities['finalizeInvoice'];
  autoTopUpCredits: InvoiceCollectionActivities['autoTopUpCredits'];
  chargeInvoice: InvoiceCollectionActivities['chargeInvoice'];
}): BillingPeriodActivities['issueAndCharge'] {
  return async (input) => {
    // Heartbeats on a timer: a close waiting in line for the provider is not taken for a dead worker,
    // and a dead worker's close is retried after the heartbeat timeout, not the whole startToClose.
    const context = Context.current();
    const heartbeats = setInterval(() => context.heartbeat(), HEARTBEAT_MS);
    try {
      const { invoiceId } = 'period' in input ? await steps.draftInvoice(input.period) : await steps.draftInterimInvoice(input.interim);
      await steps.finalizeInvoice({ invoiceId });
      await topUpCredits(steps.autoTopUpCredits, invoiceId);
      return { invoiceId, firstAttempt: await firstAttempt(steps.chargeInvoice, invoiceId) };
    } finally {
      clearInterval(heartbeats);
    }
  };
}

async function topUpCredits(autoTopUpCredits: InvoiceCollectionActivities['autoTopUpCredits'], invoiceId: string): Promise<void> {
  try {
    const topUp = await autoTopUpCredits({ invoiceId });
    if (topUp.outcome !== 'not_needed') log.info('automatic credit top-up', { invoiceId, ...topUp });
  } catch (err) {
    if (!isFinal(err)) throw err;
    log.warn('automatic credit top-up failed', { invoiceId, error: err.message });
  }
}

async function firstAttempt(chargeInvoice: InvoiceCollectionActivities['chargeInvoice'], invoiceId: string) {
  try {
    return await chargeInvoice({ invoiceId, attempt: 1 });
  } catch (err) {
    if (!isFinal(err)) throw err;
    log.warn('first charge attempt failed for good; the collection workflow takes it over', { invoiceId, error: err.message });
    return { outcome: 'rejected' as const, reason: err.type ?? err.message };
  }
}

/** A failure no retry of the activity can change. */
const isFinal = (err: unknown): err is ApplicationFailure => err instanceof ApplicationFailure && err.nonRetryable === true;
