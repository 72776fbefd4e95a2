import { createWebhookDelivery } from '../webhooks/delivery';
import { raiseSpendThresholdCrossed } from '../webhooks/spend-threshold-crossed';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import type { NotifyThresholdDeps } from './notify-threshold';
import { failUnlessSettled } from './webhook-delivery';

/**
 * The spend-cap soft notice as a Temporal activity: raised in the outbox once per threshold per
 * period (src/webhooks/spend-threshold-crossed.ts), then delivered; retried by the workflow until
 * every endpoint accepted it.
 */
export function createNotifySpendThreshold(deps: NotifyThresholdDeps): BillingPeriodActivities['notifySpendThreshold'] {
  const deliver = createWebhookDelivery(deps);
  return async (input) => {
    failUnlessSettled(await deliver(await raiseSpendThresholdCrossed(deps.pool, input, deps.clock.now())));
  };
}
