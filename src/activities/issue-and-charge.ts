import { ApplicationFailure, CancelledFailure, Context, log } from '@temporalio/activity';
import type { BillingPeriodActivities, FirstChargeOutcome } from '../workflows/billing-period';
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
 * Only drafting and finalizing make the close wait: once the invoice is final, the close must not
 * hang on the payment provider (blocked meters stay blocked and the next period is not entered
 * until it ends). So a top-up or first charge that fails, for good or for now (an outage, an
 * unknown outcome), is reported `not_charged` and the collection workflow takes it over under the
 * same idempotency keys: still at most one top-up and one charge. A top-up that failed for good is
 * logged and not tried again, as in the collection workflow.
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
      return { invoiceId, firstAttempt: await collect(steps, invoiceId) };
    } finally {
      clearInterval(heartbeats);
    }
  };
}

/**
 * `steps` with the close's one activity added, run over them: how the worker composes its
 * activities (src/activities/index.ts), and how tests compose theirs.
 */
export function withIssueAndCharge<Steps extends Parameters<typeof createIssueAndCharge>[0]>(
  steps: Steps,
): Steps & Pick<BillingPeriodActivities, 'issueAndCharge'> {
  return { ...steps, issueAndCharge: createIssueAndCharge(steps) };
}

async function collect(
  steps: Pick<InvoiceCollectionActivities, 'autoTopUpCredits' | 'chargeInvoice'>,
  invoiceId: string,
): Promise<FirstChargeOutcome> {
  try {
    const topUp = await steps.autoTopUpCredits({ invoiceId });
    if (topUp.outcome !== 'not_needed') log.info('automatic credit top-up', { invoiceId, ...topUp });
  } catch (err) {
    if (!isFinal(err)) return handOver(invoiceId, 'automatic credit top-up', err, false);
    log.warn('automatic credit top-up failed', { invoiceId, error: err.message });
  }
  try {
    return await steps.chargeInvoice({ invoiceId, attempt: 1 });
  } catch (err) {
    return handOver(invoiceId, 'first charge attempt', err, true);
  }
}

function handOver(invoiceId: string, step: string, err: unknown, toppedUp: boolean): FirstChargeOutcome {
  if (err instanceof CancelledFailure) throw err;
  const reason = err instanceof Error ? err.message : String(err);
  log.warn(`${step} failed; the collection workflow takes it over`, { invoiceId, error: reason });
  return { outcome: 'not_charged', toppedUp, reason };
}

/** A failure no retry can change: the top-up is not tried again. */
const isFinal = (err: unknown): err is ApplicationFailure => err instanceof ApplicationFailure && err.nonRetryable === true;
