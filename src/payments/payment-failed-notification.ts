import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/transaction';
import type { Invoice } from '../invoices/store';

/**
 * Raises the invoice's `payment_failed` notification in the caller's transaction (outbox), keyed
 * by the invoice: raising it again keeps the first. Returns the id of the stored notification.
 */
export async function raisePaymentFailedNotification(db: Queryable, invoice: Invoice, attempts: number, now: Date): Promise<string> {
  const id = randomUUID();
  const payload = {
    id,
    type: 'payment_failed',
    created_at: now.toISOString(),
    data: {
      invoice_id: invoice.id,
      customer: invoice.customer,
      subscription_id: invoice.subscriptionId,
      period_start: invoice.periodStart.toISOString(),
      period_end: invoice.periodEnd.toISOString(),
      total: invoice.total,
      currency: invoice.currency,
      attempts,
      status: invoice.status,
    },
  };
  await db.query(
    `insert into notifications (id, kind, subscription_id, period_start, invoice_id, payload, created_at)
     values ($1, 'payment_failed', $2, $3, $4, $5, $6) on conflict (invoice_id, kind) where invoice_id is not null do nothing`,
    [id, invoice.subscriptionId, invoice.periodStart, invoice.id, JSON.stringify(payload), now],
  );
  const { rows } = await db.query<{ id: string }>(`select id from notifications where invoice_id = $1 and kind = 'payment_failed'`, [
    invoice.id,
  ]);
  return rows[0]!.id;
}
