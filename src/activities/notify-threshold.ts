import { createWebhookDelivery, type WebhookDeliveryDeps } from '../webhooks/delivery';
import { raiseThresholdCrossed } from '../webhooks/threshold-crossed';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import { failUnlessSettled } from './webhook-delivery';

/*
 * The soft-limit notification as a Temporal activity: raised in the outbox once per threshold
 * per period (src/webhooks/threshold-crossed.ts), then delivered (src/webhooks/delivery.ts);
 * retried by the workflow until every endpoint accepted it.
 */

export type NotifyThresholdInput = Parameters<BillingPeriodActivities['notifyThreshold']>[0];

export type NotifyThresholdDeps = WebhookDeliveryDeps;

export function createNotifyThreshold(deps: NotifyThresholdDeps): BillingPeriodActivities['notifyThreshold'] {
  const deliver = createWebhookDelivery(deps);
  return async function notifyThreshold(input: NotifyThresholdInput): Promise<void> {
    failUnlessSettled(await deliver(await raiseThresholdCrossed(deps.pool, input, deps.clock.now())));
  };
}
