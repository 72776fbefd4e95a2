import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/transaction';
import { raiseThresholdNotification, type StoredNotification } from './notification-store';

/*
 * The soft-limit notification: "this threshold was crossed in this period", delivered once per
 * threshold per period to the customer's webhook endpoints and the global ones.
 *
 * Outbox first: the notification row is inserted (or found, on its natural key) before anything
 * is sent, so every retry of the activity, a replayed workflow or a reset from the Temporal UI
 * works on the same row and the same event id.
 */

export interface ThresholdCrossing {
  subscriptionId: string;
  /** The customer's external id. */
  customer: string;
  meter: string;
  periodStart: string;
  /** "80%" or an absolute quantity, as named in the plan's limits. */
  threshold: string;
  /** Usage in the period when the threshold was found crossed, as a decimal string. */
  usage: string;
}

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

/** The crossing's notification: raised now, or the one raised for the same threshold and period before. */
export function raiseThresholdCrossed(db: Queryable, crossing: ThresholdCrossing, now: Date): Promise<StoredNotification> {
  const id = randomUUID();
  const payload: ThresholdCrossedPayload = {
    id,
    type: 'threshold_crossed',
    created_at: now.toISOString(),
    data: {
      subscription_id: crossing.subscriptionId,
      customer: crossing.customer,
      meter: crossing.meter,
      period_start: crossing.periodStart,
      threshold: crossing.threshold,
      usage: crossing.usage,
    },
  };
  return raiseThresholdNotification(db, {
    id,
    subscriptionId: crossing.subscriptionId,
    periodStart: crossing.periodStart,
    meter: crossing.meter,
    threshold: crossing.threshold,
    payload,
    createdAt: now,
  });
}
