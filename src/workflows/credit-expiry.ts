import { proxyActivities, setCurrentDetails, sleep } from '@temporalio/workflow';
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
}

export interface CreditExpiryInput {
  grantId: string;
  /** ISO 8601 UTC. */
  expiresAt: string;
}

export const creditExpiryWorkflowIdFor = (grantId: string) => `credit-expiry/${grantId}`;

const { expireCreditGrant } = proxyActivities<CreditExpiryActivities>({
  startToCloseTimeout: ACTIVITY_START_TO_CLOSE_MS,
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes' },
});

export async function creditExpiryWorkflow(input: CreditExpiryInput): Promise<{ expired: string }> {
  const wait = new Date(input.expiresAt).getTime() - Date.now();
  setCurrentDetails(`Grant ${input.grantId} expires at ${input.expiresAt}`);
  if (wait > 0) await sleep(wait);
  const result = await expireCreditGrant({ grantId: input.grantId });
  setCurrentDetails(`Grant ${input.grantId} expired at ${input.expiresAt}: ${result.expired} left expired`);
  return result;
}
