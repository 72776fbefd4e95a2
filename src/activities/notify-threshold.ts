import { randomUUID } from 'node:crypto';
import type { Pool } from '../db/pool';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import { createWebhookDelivery, type NotificationStatus, type StoredNotification, type WebhookDeliveryDeps } from './webhook-delivery';

/*
 * The soft-limit notification: "this threshold was crossed in this period", delivered once per
 * threshold per period to the customer's webhook endpoints and the global ones.
 *
 * Outbox first: the notification row is inserted (or found, on its natural key) before anything
 * is sent, so every retry of the activity, a replayed workflow or a reset from the Temporal UI
 * works on the same row and the same event id. Delivery: src/activities/webhook-delivery.ts.
 */

export type NotifyThresholdInput = Parameters<BillingPeriodActivities['notifyThreshold']>[0];
export type { NotificationStatus };

/** The JSON body POSTed to endpoints, stored as the row's payload. */
export interface ThresholdCrossedPayload {
  /** The notification id, also sent as Meterflow-Event-Id. */
  id: string;
  type: 'threshold_crossed';
  created_at: string;
  data: {
    subscription_id: string;
    /** The customer's external id. */
    customer: string;
    meter: string;
    period_start: string;
    /** "80%" or an absolute quantity, as named in the plan's limits. */
    threshold: string;
    /** Usage in the period when the threshold was found crossed, as a decimal string. */
    usage: string;
  };
}

export type NotifyThresholdDeps = WebhookDeliveryDeps;

export function createNotifyThreshold(deps: NotifyThresholdDeps): BillingPeriodActivities['notifyThreshold'] {
  const deliver = createWebhookDelivery(deps);
  return async function notifyThreshold(input: NotifyThresholdInput): Promise<void> {
    await deliver(await raiseNotification(deps.pool, input, deps.clock.now()));
  };
}

/** Inserts the notification unless its natural key exists, then reads whichever row holds the key. */
async function raiseNotification(pool: Pool, input: NotifyThresholdInput, now: Date): Promise<StoredNotification> {
  const id = randomUUID();
  const payload: ThresholdCrossedPayload = {
    id,
    type: 'threshold_crossed',
    created_at: now.toISOString(),
    data: {
      subscription_id: input.subscriptionId,
      customer: input.customer,
      meter: input.meter,
      period_start: input.periodStart,
      threshold: input.threshold,
      usage: input.usage,
    },
  };
  await pool.query(
    `insert into notifications (id, kind, subscription_id, period_start, meter, threshold, payload, created_at)
     values ($1, 'threshold_crossed', $2, $3, $4, $5, $6, $7)
     on conflict (subscription_id, period_start, meter, threshold) do nothing`,
    [id, input.subscriptionId, input.periodStart, input.meter, input.threshold, JSON.stringify(payload), now],
  );
  // A separate statement: under READ COMMITTED it sees a row a concurrent execution committed
  // while our insert waited on the key, which a single insert-or-select statement would not.
  const { rows } = await pool.query<{
    id: string;
    status: NotificationStatus;
    payload: ThresholdCrossedPayload;
    delivered_endpoints: string[];
  }>(
    `select id, status, payload, delivered_endpoints::text[] as delivered_endpoints from notifications
     where subscription_id = $1 and period_start = $2 and meter = $3 and threshold = $4`,
    [input.subscriptionId, input.periodStart, input.meter, input.threshold],
  );
  const row = rows[0];
  if (!row)
    throw new Error(`notification for subscription ${input.subscriptionId}, ${input.meter} ${input.threshold} vanished after insert`);
  return {
    id: row.id,
    subscriptionId: input.subscriptionId,
    status: row.status,
    payload: row.payload,
    deliveredEndpoints: row.delivered_endpoints,
  };
}
