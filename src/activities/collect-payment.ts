import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { getInvoice, lockInvoice, setInvoiceStatus } from '../billing/invoice-store';
import type { Clock } from '../clock';
import { recordAudit } from '../db/audit';
import type { Pool } from '../db/pool';
import { inTransaction } from '../db/transaction';
import { minorUnits } from '../domain/currencies';
import { Decimal } from '../domain/money';
import { ProviderRejectedError, type PaymentProvider, type ProviderCharge } from '../provider/payment-provider';
import type { InvoiceCollectionActivities } from '../workflows/invoice-collection';
import { workflowActor } from './workflow-actor';

/** The provider idempotency key of one collection attempt: a business key, never a run id. */
export const idempotencyKeyFor = (invoiceId: string, attempt: number) => `meterflow-invoice-${invoiceId}-attempt-${attempt}`;

/**
 * Collection of one finalized invoice. A charge attempt is recorded before the provider is
 * called, under its idempotency key; an unknown outcome (timeout, 5xx, lost response) makes the
 * activity fail and Temporal retries the SAME attempt with the SAME key, so the provider
 * returns the first result instead of charging again. Before every call the provider's own
 * record is consulted: a success under any earlier key settles the invoice without a new charge.
 */
export function createCollectPayment(deps: {
  pool: Pool;
  clock: Clock;
  provider: PaymentProvider;
}): Omit<InvoiceCollectionActivities, 'deliverNotification'> {
  const chargeInvoice: InvoiceCollectionActivities['chargeInvoice'] = async ({ invoiceId, attempt }) => {
    const key = idempotencyKeyFor(invoiceId, attempt);
    const prepared = await inTransaction(deps.pool, async (client) => {
      const invoice = await lockInvoice(client, invoiceId);
      if (!invoice) throw ApplicationFailure.nonRetryable(`invoice ${invoiceId} does not exist`, 'unknown_invoice');
      if (invoice.status === 'paid') return { done: { outcome: 'paid' as const } };
      if (invoice.status === 'void') return { done: { outcome: 'void' as const } };
      if (invoice.status === 'draft')
        throw ApplicationFailure.nonRetryable(`invoice ${invoiceId} is not finalized`, 'invoice_not_finalized');
      if (new Decimal(invoice.total).lte(0)) {
        // Nothing to collect (no usage, or credits cover it): settled without a charge.
        await setInvoiceStatus(client, invoiceId, 'paid', deps.clock.now());
        await recordAudit(client, {
          actor: workflowActor(),
          action: 'invoice.settled_without_charge',
          subjectType: 'invoice',
          subjectId: invoiceId,
          before: { status: invoice.status },
          after: { status: 'paid', total: invoice.total },
        });
        return { done: { outcome: 'not_due' as const } };
      }
      const now = deps.clock.now();
      await client.query(
        `insert into charges (invoice_id, amount, currency, status, created_at, updated_at) values ($1, $2, $3, 'pending', $4, $4)
         on conflict (invoice_id) do nothing`,
        [invoiceId, invoice.total, invoice.currency, now],
      );
      await client.query(
        `insert into charge_attempts (invoice_id, attempt, idempotency_key, status, requested_at) values ($1, $2, $3, 'pending', $4)
         on conflict (invoice_id, attempt) do nothing`,
        [invoiceId, attempt, key, now],
      );
      return { invoice };
    });
    if (prepared.done) return prepared.done;
    const invoice = prepared.invoice!;

    let charge: ProviderCharge;
    try {
      const earlier = (await deps.provider.listCharges({ invoiceId })).find((c) => c.status === 'succeeded');
      charge =
        earlier ??
        (await deps.provider.charge({
          idempotencyKey: key,
          customerId: invoice.customerId,
          invoiceId,
          amountMinor: new Decimal(invoice.total).times(new Decimal(10).pow(minorUnits(invoice.currency))).toFixed(0),
          currency: invoice.currency,
          description: `Invoice ${invoiceId}`,
        }));
    } catch (err) {
      if (err instanceof ProviderRejectedError) throw ApplicationFailure.nonRetryable(err.message, 'provider_rejected');
      throw err;
    }
    return recordOutcome(invoiceId, attempt, charge);
  };

  type Outcome = Awaited<ReturnType<InvoiceCollectionActivities['chargeInvoice']>>;

  async function recordOutcome(invoiceId: string, attempt: number, charge: ProviderCharge): Promise<Outcome> {
    return inTransaction(deps.pool, async (client): Promise<Outcome> => {
      const invoice = (await lockInvoice(client, invoiceId))!;
      const now = deps.clock.now();
      const actor = workflowActor();
      if (charge.status === 'declined') {
        await client.query(
          `update charge_attempts set status = 'declined', provider_charge_id = $3, decline_code = $4, completed_at = $5
            where invoice_id = $1 and attempt = $2 and status = 'pending'`,
          [invoiceId, attempt, charge.id, charge.declineCode ?? null, now],
        );
        await recordAudit(client, {
          actor,
          action: 'charge.declined',
          subjectType: 'invoice',
          subjectId: invoiceId,
          details: { attempt, provider_charge_id: charge.id, decline_code: charge.declineCode ?? null },
        });
        return { outcome: 'declined' as const, declineCode: charge.declineCode ?? 'declined' };
      }
      // The attempt that charged may be an earlier one whose response was lost.
      const { rowCount } = await client.query(
        `update charge_attempts set status = 'succeeded', provider_charge_id = $2, completed_at = $3
          where idempotency_key = $1 and status <> 'succeeded'`,
        [charge.idempotencyKey, charge.id, now],
      );
      await client.query(`update charges set status = 'succeeded', provider_charge_id = $2, updated_at = $3 where invoice_id = $1`, [
        invoiceId,
        charge.id,
        now,
      ]);
      if (invoice.status === 'finalized' || invoice.status === 'payment_failed') await setInvoiceStatus(client, invoiceId, 'paid', now);
      if (rowCount) {
        await recordAudit(client, {
          actor,
          action: 'charge.succeeded',
          subjectType: 'invoice',
          subjectId: invoiceId,
          details: {
            attempt,
            provider_charge_id: charge.id,
            idempotency_key: charge.idempotencyKey,
            amount_minor: charge.amountMinor,
            currency: charge.currency,
          },
          before: { status: invoice.status },
          after: { status: invoice.status === 'void' ? 'void' : 'paid' },
        });
      }
      // A charge that landed on an invoice voided meanwhile stays recorded; reconciliation reports it.
      return { outcome: invoice.status === 'void' ? ('void' as const) : ('paid' as const) };
    });
  }

  /**
   * After the last dunning attempt: the invoice becomes payment_failed and a `payment_failed`
   * notification is raised in the same transaction (outbox), keyed by the invoice, so a retry
   * neither fails it twice nor notifies twice. Returns the notification to deliver.
   */
  const markPaymentFailed: InvoiceCollectionActivities['markPaymentFailed'] = async ({ invoiceId, attempts }) =>
    inTransaction(deps.pool, async (client) => {
      const locked = await lockInvoice(client, invoiceId);
      if (!locked) throw ApplicationFailure.nonRetryable(`invoice ${invoiceId} does not exist`, 'unknown_invoice');
      const now = deps.clock.now();
      if (locked.status === 'finalized') {
        await setInvoiceStatus(client, invoiceId, 'payment_failed', now);
        await client.query(`update charges set status = 'failed', updated_at = $2 where invoice_id = $1 and status = 'pending'`, [
          invoiceId,
          now,
        ]);
        await recordAudit(client, {
          actor: workflowActor(),
          action: 'invoice.payment_failed',
          subjectType: 'invoice',
          subjectId: invoiceId,
          details: { attempts },
          before: { status: 'finalized' },
          after: { status: 'payment_failed' },
        });
      }
      const invoice = (await getInvoice(client, invoiceId))!;
      const id = randomUUID();
      const payload = {
        id,
        type: 'payment_failed',
        created_at: now.toISOString(),
        data: {
          invoice_id: invoiceId,
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
      await client.query(
        `insert into notifications (id, kind, subscription_id, period_start, invoice_id, payload, created_at)
         values ($1, 'payment_failed', $2, $3, $4, $5, $6) on conflict (invoice_id, kind) where invoice_id is not null do nothing`,
        [id, invoice.subscriptionId, invoice.periodStart, invoiceId, JSON.stringify(payload), now],
      );
      const { rows } = await client.query<{ id: string }>(
        `select id from notifications where invoice_id = $1 and kind = 'payment_failed'`,
        [invoiceId],
      );
      return { notificationId: rows[0]!.id };
    });

  return { chargeInvoice, markPaymentFailed };
}
