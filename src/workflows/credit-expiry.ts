import { isCancellation, log, patched, proxyActivities, setCurrentDetails, sleep } from '@temporalio/workflow';
import type { AutoTopUpOutcome } from '../domain/credit-drawdown';
import { ACTIVITY_START_TO_CLOSE_MS } from './activity-timeouts';

/*
 * Expires one grant of prepaid credit by a durable timer, not a cron: the workflow sleeps until
 * the grant's expiry (a worker restart or a deploy in between changes nothing), then an activity
 * writes the expiry entry for what is left. One workflow per grant (`credit-expiry/<grant id>`),
 * started when the grant becomes active; chosen over the billing workflow because a grant's life
 * is its own: it outlives periods, plan changes and cancellations, and a customer may hold credit
 * without a subscription.
 */

export interface CreditExpiryActivities {
  /** Writes the grant's expiry entry for what is left of it (once: keyed by the grant); returns what expired. */
  expireCreditGrant(input: { grantId: string }): Promise<{ expired: string }>;
  /** The customer's automatic top-up when the expiry left the balance below its threshold (once per grant). */
  autoTopUpAfterExpiry(input: { grantId: string }): Promise<AutoTopUpOutcome>;
}

/** Histories recorded before it expired the grant and ended: no top-up after the expiry. */
export const EXPIRY_AUTO_TOP_UP = 'expiry-auto-top-up';

export interface CreditExpiryInput {
  grantId: string;
  /** ISO 8601 UTC. */
  expiresAt: string;
}

export const creditExpiryWorkflowIdFor = (grantId: string) => `credit-expiry/${grantId}`;

const { expireCreditGrant, autoTopUpAfterExpiry } = proxyActivities<CreditExpiryActivities>({
  startToCloseTimeout: ACTIVITY_START_TO_CLOSE_MS,
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes' },
});

export async function creditExpiryWorkflow(input: CreditExpiryInput): Promise<{ expired: string }> {
  const wait = new Date(input.expiresAt).getTime() - Date.now();
  setCurrentDetails(`Grant ${input.grantId} expires at ${input.expiresAt}`);
  if (wait > 0) await sleep(wait);
  const result = await expireCreditGrant({ grantId: input.grantId });
  setCurrentDetails(`Grant ${input.grantId} expired at ${input.expiresAt}: ${result.expired} left expired`);
  // An expiry lowers the balance as a drawdown does: it may call for the automatic top-up.
  if (result.expired !== '0' && patched(EXPIRY_AUTO_TOP_UP)) await topUpAfterExpiry(input.grantId);
  return result;
}

/** A top-up the provider refused for good is logged, not fatal: the expiry stands. */
async function topUpAfterExpiry(grantId: string): Promise<void> {
  try {
    const topUp = await autoTopUpAfterExpiry({ grantId });
    if (topUp.outcome !== 'not_needed') log.info('automatic credit top-up after an expiry', { expiredGrantId: grantId, ...topUp });
  } catch (err) {
    if (isCancellation(err)) throw err;
    log.warn('automatic credit top-up after an expiry failed', { grantId, error: err instanceof Error ? err.message : String(err) });
  }
}
