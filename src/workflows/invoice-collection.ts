import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  ParentClosePolicy,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  sleep,
  startChild,
} from '@temporalio/workflow';
import type { AutoTopUpOutcome } from '../domain/credit-drawdown';
import { parseIsoDuration } from '../domain/iso-duration';
import { ACTIVITY_START_TO_CLOSE_MS } from './activity-timeouts';

/*
 * Collects one finalized invoice: charge it (or, started by a close that made the first attempt
 * itself, go on from that attempt's decline), and when the charge is declined, try again on the
 * dunning schedule with durable timers (a worker restart or a deploy in between changes
 * nothing), then mark it payment_failed and notify the customer's webhooks. Its id is `collect/<invoice id>`: one collection per
 * invoice, whichever run of the billing workflow started it.
 */

/** What one charge attempt ended in. */
export type ChargeAttemptOutcome = { outcome: 'paid' | 'void' | 'not_due' } | { outcome: 'declined'; declineCode: string };

export interface InvoiceCollectionActivities {
  chargeInvoice(input: { invoiceId: string; attempt: number }): Promise<ChargeAttemptOutcome>;
  /** Marks the invoice payment_failed and raises its notification (outbox); returns the notification. */
  markPaymentFailed(input: { invoiceId: string; attempts: number }): Promise<{ notificationId: string }>;
  /** Delivers a stored notification to the customer's webhook endpoints, retried until accepted. */
  deliverNotification(input: { notificationId: string }): Promise<void>;
  /** After the invoice drew prepaid credits: the customer's automatic top-up, when the balance fell below its threshold (once per invoice). */
  autoTopUpCredits(input: { invoiceId: string }): Promise<AutoTopUpOutcome>;
}

/** Histories recorded before automatic top-ups replay without the top-up activity. */
export const CREDIT_AUTO_TOP_UP = 'credit-auto-top-up';

export interface InvoiceCollectionInput {
  invoiceId: string;
  /** ISO 8601 durations to wait after each declined attempt, e.g. ["P1D", "P3D", "P7D"]. */
  dunning: string[];
  /**
   * Set when the close already ran the top-up and charge attempt 1 (BillingPeriodActivities.
   * issueAndCharge): that attempt's decline, so collection goes on with the dunning schedule; or
   * null when it failed otherwise and is tried again here. Absent: from the start, top-up
   * included (every history recorded before it, and a close whose top-up failed for now).
   */
  resume?: { declined: { attempt: number; declineCode: string } | null };
}

export type InvoiceCollectionResult = { outcome: 'paid' | 'void' | 'not_due' | 'payment_failed'; attempts: number };

export const collectionWorkflowIdFor = (invoiceId: string) => `collect/${invoiceId}`;

/**
 * Starts the invoice's collection as a child the caller abandons (collection outlives it). The id
 * is the invoice's, so a replayed or reset caller, or another workflow that issued the same
 * invoice, finds the collection already started instead of starting a second one.
 */
export async function startInvoiceCollection(
  invoiceId: string,
  dunning: string[],
  resume?: InvoiceCollectionInput['resume'],
): Promise<void> {
  try {
    await startChild(invoiceCollectionWorkflow, {
      workflowId: collectionWorkflowIdFor(invoiceId),
      args: [{ invoiceId, dunning, ...(resume ? { resume } : {}) }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
}

const { chargeInvoice, markPaymentFailed, deliverNotification, autoTopUpCredits } = proxyActivities<InvoiceCollectionActivities>({
  startToCloseTimeout: ACTIVITY_START_TO_CLOSE_MS,
  // Unknown provider outcomes are retried with the same attempt (and idempotency key) until known.
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes' },
});

export async function invoiceCollectionWorkflow(input: InvoiceCollectionInput): Promise<InvoiceCollectionResult> {
  if (!input.resume && patched(CREDIT_AUTO_TOP_UP)) await topUpCredits(input.invoiceId);
  let attempt = 1;
  const declined = input.resume?.declined;
  if (declined) {
    const failed = await afterDecline(input, declined.attempt, declined.declineCode);
    if (failed) return failed;
    attempt = declined.attempt + 1;
  }
  for (; ; attempt++) {
    setCurrentDetails(`Invoice ${input.invoiceId}: charge attempt ${attempt} of ${input.dunning.length + 1}`);
    const result = await chargeInvoice({ invoiceId: input.invoiceId, attempt });
    if (result.outcome !== 'declined') {
      setCurrentDetails(`Invoice ${input.invoiceId}: ${result.outcome} after ${attempt} attempt(s)`);
      return { outcome: result.outcome, attempts: attempt };
    }
    const failed = await afterDecline(input, attempt, result.declineCode);
    if (failed) return failed;
  }
}

/** After attempt `attempt` was declined: waits for the next one on the dunning schedule, or, past its end, fails the invoice and notifies. */
async function afterDecline(
  input: InvoiceCollectionInput,
  attempt: number,
  declineCode: string,
): Promise<InvoiceCollectionResult | undefined> {
  const wait = input.dunning[attempt - 1];
  if (wait === undefined) {
    const { notificationId } = await markPaymentFailed({ invoiceId: input.invoiceId, attempts: attempt });
    await deliverNotification({ notificationId });
    setCurrentDetails(`Invoice ${input.invoiceId}: payment failed after ${attempt} attempt(s) (last decline: ${declineCode})`);
    return { outcome: 'payment_failed', attempts: attempt };
  }
  log.info('charge declined; next attempt on the dunning schedule', { invoiceId: input.invoiceId, attempt, declineCode, wait });
  setCurrentDetails(`Invoice ${input.invoiceId}: attempt ${attempt} declined (${declineCode}); next attempt in ${wait}`);
  await sleep(parseIsoDuration(wait));
  return undefined;
}

/** A top-up the provider refused for good is logged, not fatal: collecting the invoice goes on. */
async function topUpCredits(invoiceId: string): Promise<void> {
  try {
    const topUp = await autoTopUpCredits({ invoiceId });
    if (topUp.outcome !== 'not_needed') log.info('automatic credit top-up', { invoiceId, ...topUp });
  } catch (err) {
    if (isCancellation(err)) throw err;
    log.warn('automatic credit top-up failed', { invoiceId, error: err instanceof Error ? err.message : String(err) });
  }
}
