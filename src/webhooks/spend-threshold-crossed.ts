import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/transaction';
import { raiseSpendThresholdNotification, type StoredNotification } from './notification-store';

/*
 * The spend-cap soft notice: "this period's priced usage reached this percent of the spend cap",
 * delivered once per threshold per period to the customer's webhook endpoints and the global ones.
 * Outbox first, keyed by (subscription, period, threshold), like the meter threshold notice.
 */

export interface SpendThresholdCrossing {
  subscriptionId: string;
  /** The customer's external id. */
  customer: string;
  periodStart: string;
  /** "80%", as named in the spend cap. */
  threshold: string;
  /** The period's priced usage when the threshold was found crossed, and the cap, in `currency`. */
  spent: string;
  cap: string;
  currency: string;
}

/** The JSON body POSTed to endpoints, stored as the row's payload. */
export interface SpendThresholdCrossedPayload {
  /** The notification id, also sent as Meterflow-Event-Id. */
  id: string;
  type: 'spend_threshold_crossed';
  created_at: string;
  data: {
    subscription_id: string;
    customer: string;
    period_start: string;
    threshold: string;
    spent: string;
    cap: string;
    currency: string;
  };
}

/** The crossing's notification: raised now, or the one raised for the same threshold and period before. */
export function raiseSpendThresholdCrossed(db: Queryable, crossing: SpendThresholdCrossing, now: Date): Promise<StoredNotification> {
  const id = randomUUID();
  const payload: SpendThresholdCrossedPayload = {
    id,
    type: 'spend_threshold_crossed',
    created_at: now.toISOString(),
    data: {
      subscription_id: crossing.subscriptionId,
      customer: crossing.customer,
      period_start: crossing.periodStart,
      threshold: crossing.threshold,
      spent: crossing.spent,
      cap: crossing.cap,
      currency: crossing.currency,
    },
  };
  return raiseSpendThresholdNotification(db, {
    id,
    subscriptionId: crossing.subscriptionId,
    periodStart: crossing.periodStart,
    threshold: crossing.threshold,
    payload,
    createdAt: now,
  });
}
