import { ApplicationFailure } from '@temporalio/activity';
import { createWebhookDelivery, type DeliveryOutcome, type WebhookDeliveryDeps } from '../webhooks/delivery';
import { findNotification } from '../webhooks/notification-store';
import type { InvoiceCollectionActivities } from '../workflows/invoice-collection';

/*
 * Webhook delivery as Temporal activities (src/webhooks/delivery.ts does the work). A round that
 * leaves some endpoint without the notification throws, so the workflow's retry policy backs
 * off and tries again; a rejection that cannot change (a 4xx other than 408 and 429, a refused
 * target) is non-retryable.
 */

/** Throws the failure Temporal retries (or gives up on) unless the notification is settled. */
export function failUnlessSettled(outcome: DeliveryOutcome): void {
  if (outcome.settled) return;
  throw outcome.retryable
    ? ApplicationFailure.retryable(outcome.message, 'WebhookDeliveryFailed')
    : ApplicationFailure.nonRetryable(outcome.message, 'WebhookRejected');
}

/** The activity delivering a notification raised elsewhere (e.g. with the invoice it is about). */
export function createDeliverNotification(deps: WebhookDeliveryDeps): InvoiceCollectionActivities['deliverNotification'] {
  const deliver = createWebhookDelivery(deps);
  return async ({ notificationId }) => {
    const notification = await findNotification(deps.pool, notificationId);
    if (!notification) throw ApplicationFailure.nonRetryable(`notification ${notificationId} does not exist`, 'unknown_notification');
    failUnlessSettled(await deliver(notification));
  };
}
