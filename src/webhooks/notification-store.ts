import type { Queryable } from '../db/transaction';

/*
 * The notifications outbox: one row per event to deliver, holding the exact payload every attempt
 * sends and which endpoints have accepted it so far. Delivery state only moves forward: no update
 * here touches a row that is already delivered (an overlapping execution may have finished first).
 */

export type NotificationStatus = 'pending' | 'delivered' | 'failed' | 'no_endpoint';

export interface StoredNotification {
  id: string;
  subscriptionId: string;
  status: NotificationStatus;
  payload: object;
  deliveredEndpoints: string[];
}

/** What makes a threshold notification unique: once per threshold per meter per period. */
export interface ThresholdKey {
  subscriptionId: string;
  periodStart: string;
  meter: string;
  threshold: string;
}

interface NotificationRow {
  id: string;
  subscription_id: string;
  status: NotificationStatus;
  payload: object;
  delivered_endpoints: string[];
}

const notificationColumns = 'id, subscription_id, status, payload, delivered_endpoints::text[] as delivered_endpoints';

const toNotification = (r: NotificationRow): StoredNotification => ({
  id: r.id,
  subscriptionId: r.subscription_id,
  status: r.status,
  payload: r.payload,
  deliveredEndpoints: r.delivered_endpoints,
});

export async function findNotification(db: Queryable, id: string): Promise<StoredNotification | undefined> {
  const { rows } = await db.query<NotificationRow>(`select ${notificationColumns} from notifications where id = $1`, [id]);
  return rows[0] && toNotification(rows[0]);
}

/**
 * Inserts the threshold notification unless its key exists, then reads whichever row holds the
 * key: the new one, or the one an earlier execution raised (with its own id and payload).
 */
export async function raiseThresholdNotification(
  db: Queryable,
  notification: ThresholdKey & { id: string; payload: object; createdAt: Date },
): Promise<StoredNotification> {
  const { id, subscriptionId, periodStart, meter, threshold } = notification;
  await db.query(
    `insert into notifications (id, kind, subscription_id, period_start, meter, threshold, payload, created_at)
     values ($1, 'threshold_crossed', $2, $3, $4, $5, $6, $7)
     on conflict (subscription_id, period_start, meter, threshold) do nothing`,
    [id, subscriptionId, periodStart, meter, threshold, JSON.stringify(notification.payload), notification.createdAt],
  );
  // A separate statement: under READ COMMITTED it sees a row a concurrent execution committed
  // while our insert waited on the key, which a single insert-or-select statement would not.
  const { rows } = await db.query<NotificationRow>(
    `select ${notificationColumns} from notifications
     where subscription_id = $1 and period_start = $2 and meter = $3 and threshold = $4`,
    [subscriptionId, periodStart, meter, threshold],
  );
  const row = rows[0];
  if (!row) throw new Error(`notification for subscription ${subscriptionId}, ${meter} ${threshold} vanished after insert`);
  return toNotification(row);
}

/**
 * Inserts a spend-threshold notification unless one exists for this subscription, period and
 * threshold, then reads whichever row holds the key (as raiseThresholdNotification does).
 */
export async function raiseSpendThresholdNotification(
  db: Queryable,
  notification: { id: string; subscriptionId: string; periodStart: string; threshold: string; payload: object; createdAt: Date },
): Promise<StoredNotification> {
  const { id, subscriptionId, periodStart, threshold } = notification;
  await db.query(
    `insert into notifications (id, kind, subscription_id, period_start, threshold, payload, created_at)
     values ($1, 'spend_threshold_crossed', $2, $3, $4, $5, $6)
     on conflict (subscription_id, period_start, threshold) where kind = 'spend_threshold_crossed' do nothing`,
    [id, subscriptionId, periodStart, threshold, JSON.stringify(notification.payload), notification.createdAt],
  );
  const { rows } = await db.query<NotificationRow>(
    `select ${notificationColumns} from notifications
     where kind = 'spend_threshold_crossed' and subscription_id = $1 and period_start = $2 and threshold = $3`,
    [subscriptionId, periodStart, threshold],
  );
  const row = rows[0];
  if (!row) throw new Error(`spend notification for subscription ${subscriptionId}, ${threshold} vanished after insert`);
  return toNotification(row);
}

/**
 * Raises an invoice's notification of `kind` (e.g. `payment_failed`) in the caller's transaction,
 * keyed by the invoice and kind: raising it again keeps the first. Returns the stored one's id.
 */
export async function raiseInvoiceNotification(
  db: Queryable,
  notification: {
    id: string;
    kind: string;
    invoiceId: string;
    subscriptionId: string;
    periodStart: Date;
    payload: object;
    createdAt: Date;
  },
): Promise<string> {
  const { id, kind, invoiceId, subscriptionId, periodStart } = notification;
  await db.query(
    `insert into notifications (id, kind, subscription_id, period_start, invoice_id, payload, created_at)
     values ($1, $2, $3, $4, $5, $6, $7) on conflict (invoice_id, kind) where invoice_id is not null do nothing`,
    [id, kind, subscriptionId, periodStart, invoiceId, JSON.stringify(notification.payload), notification.createdAt],
  );
  // A separate statement, as for thresholds: it sees a row a concurrent execution committed meanwhile.
  const { rows } = await db.query<{ id: string }>('select id from notifications where invoice_id = $1 and kind = $2', [invoiceId, kind]);
  return rows[0]!.id;
}

/** Settles a notification no endpoint is left to receive: delivered (all accepted earlier) or no_endpoint. */
export async function settleUnsent(db: Queryable, id: string, status: 'delivered' | 'no_endpoint', at: Date): Promise<void> {
  await db.query(
    `update notifications set status = $2::text, delivered_at = case when $2::text = 'delivered' then $3::timestamptz end
     where id = $1 and status <> 'delivered'`,
    [id, status, at],
  );
}

/**
 * Counts one attempt and its outcome; returns false when the row was already delivered, which
 * it leaves as it is.
 */
export async function recordAttempt(
  db: Queryable,
  attempt: { id: string; at: Date; accepted: string[]; status: NotificationStatus; error: string | null },
): Promise<boolean> {
  const { rowCount } = await db.query(
    `update notifications set
       attempts = attempts + 1,
       last_attempt_at = $2,
       delivered_endpoints = array(select distinct unnest(delivered_endpoints || $3::uuid[])),
       status = $4::text,
       -- The last error stays after a later success: it says why delivery took several attempts.
       last_error = coalesce($5, last_error),
       delivered_at = case when $4::text = 'delivered' then $2::timestamptz end
     where id = $1 and status <> 'delivered'`,
    [attempt.id, attempt.at, attempt.accepted, attempt.status, attempt.error],
  );
  return rowCount === 1;
}
