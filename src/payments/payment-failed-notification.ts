import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/transaction';
import type { Invoice } from '../invoices/store';
import { raiseInvoiceNotification } from '../webhooks/notification-store';

/** The invoice's `payment_failed` notification, raised in the caller's transaction through the webhooks outbox. */
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
  return raiseInvoiceNotification(db, {
    id,
    kind: 'payment_failed',
    invoiceId: invoice.id,
    subscriptionId: invoice.subscriptionId,
    periodStart: invoice.periodStart,
    payload,
    createdAt: now,
  });
}
