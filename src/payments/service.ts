import type { Clock } from '../clock';
import { recordAudit, type AuditActor } from '../db/audit';
import type { Pool } from '../db/pool';
import { inTransaction, type Queryable } from '../db/transaction';
import { Decimal, toMinorUnits } from '../domain/money';
import { ok, refuse, type Result } from '../domain/result';
import { getInvoice, lockInvoice, setInvoiceStatus, type LockedInvoice } from '../invoices/store';
import type { PaymentProvider, ProviderCharge } from '../provider/payment-provider';
import { raisePaymentFailedNotification } from './payment-failed-notification';
import { failPendingCharge, openChargeAttempt, recordDeclinedAttempt, recordSucceededCharge } from './store';

/** The provider idempotency key of one collection attempt: a business key, never a run id. */
export const idempotencyKeyFor = (invoiceId: string, attempt: number) => `meterflow-invoice-${invoiceId}-attempt-${attempt}`;

export type ChargeOutcome = { outcome: 'paid' | 'void' | 'not_due' } | { outcome: 'declined'; declineCode: string };

const unknownInvoice = (invoiceId: string) => refuse('not_found', 'unknown_invoice', `Invoice ${invoiceId} does not exist.`);

/**
 * Collection of finalized invoices at the payment provider. A charge attempt is recorded before
 * the provider is called, under its idempotency key; an unknown outcome (timeout, 5xx, lost
 * response) is thrown, and the caller retries the SAME attempt with the SAME key, so the provider
 * returns the first result instead of charging again. Before every call the provider's own record
 * is consulted: a success under any earlier key settles the invoice without a new charge. A
 * charge the provider refuses outright throws its ProviderRejectedError.
 */
export class PaymentService {
  constructor(
    private readonly pool: Pool,
    private readonly clock: Clock,
    private readonly provider: PaymentProvider,
  ) {}

  /** Attempt number `attempt` at collecting the invoice; attempting it again repeats its idempotency key. */
  async charge(
    invoiceId: string,
    attempt: number,
    actor: AuditActor,
  ): Promise<Result<ChargeOutcome, 'unknown_invoice' | 'invoice_not_finalized'>> {
    const key = idempotencyKeyFor(invoiceId, attempt);
    const prepared = await inTransaction(this.pool, (client) => this.prepare(client, invoiceId, attempt, key, actor));
    if (!prepared.ok) return prepared;
    if ('settled' in prepared.value) return ok(prepared.value.settled);
    const charge = await this.chargeAtProvider(prepared.value.due, attempt, key);
    return ok(await inTransaction(this.pool, (client) => this.recordOutcome(client, invoiceId, attempt, charge, actor)));
  }

  /**
   * After the last dunning attempt: the invoice becomes payment_failed and its `payment_failed`
   * notification is raised in the same transaction (outbox), keyed by the invoice, so doing it
   * again neither fails it twice nor notifies twice. Returns the notification to deliver.
   */
  async markFailed(invoiceId: string, attempts: number, actor: AuditActor): Promise<Result<{ notificationId: string }, 'unknown_invoice'>> {
    return inTransaction(this.pool, async (client) => {
      const locked = await lockInvoice(client, invoiceId);
      if (!locked) return unknownInvoice(invoiceId);
      const now = this.clock.now();
      if (locked.status === 'finalized') {
        await setInvoiceStatus(client, invoiceId, 'payment_failed', now);
        await failPendingCharge(client, invoiceId, now);
        await recordAudit(client, {
          actor,
          action: 'invoice.payment_failed',
          subjectType: 'invoice',
          subjectId: invoiceId,
          details: { attempts },
          before: { status: 'finalized' },
          after: { status: 'payment_failed' },
        });
      }
      const invoice = (await getInvoice(client, invoiceId))!;
      return ok({ notificationId: await raisePaymentFailedNotification(client, invoice, attempts, now) });
    });
  }

  /** Settles what needs no charge, or records the attempt and returns the invoice due. */
  private async prepare(
    client: Queryable,
    invoiceId: string,
    attempt: number,
    idempotencyKey: string,
    actor: AuditActor,
  ): Promise<Result<{ settled: ChargeOutcome } | { due: LockedInvoice }, 'unknown_invoice' | 'invoice_not_finalized'>> {
    const invoice = await lockInvoice(client, invoiceId);
    if (!invoice) return unknownInvoice(invoiceId);
    if (invoice.status === 'paid') return ok({ settled: { outcome: 'paid' } });
    if (invoice.status === 'void') return ok({ settled: { outcome: 'void' } });
    if (invoice.status === 'draft') return refuse('conflict', 'invoice_not_finalized', `Invoice ${invoiceId} is not finalized.`);
    if (new Decimal(invoice.total).lte(0)) {
      // Nothing to collect (no usage, or credits cover it): settled without a charge.
      await setInvoiceStatus(client, invoiceId, 'paid', this.clock.now());
      await recordAudit(client, {
        actor,
        action: 'invoice.settled_without_charge',
        subjectType: 'invoice',
        subjectId: invoiceId,
        before: { status: invoice.status },
        after: { status: 'paid', total: invoice.total },
      });
      return ok({ settled: { outcome: 'not_due' } });
    }
    await openChargeAttempt(
      client,
      { invoiceId, attempt, idempotencyKey, amount: invoice.total, currency: invoice.currency },
      this.clock.now(),
    );
    return ok({ due: invoice });
  }

  /**
   * A later attempt first asks the provider whether an earlier one, under its own key, succeeded
   * after all (its answer was lost or came late): then that charge stands and none is made. The
   * first attempt has no earlier one (every charge of an invoice is an attempt of its collection,
   * and attempt 1 repeated is deduplicated by its key), so it skips the question: one provider
   * request per close instead of two when every customer closes at once.
   */
  private async chargeAtProvider(invoice: LockedInvoice, attempt: number, idempotencyKey: string): Promise<ProviderCharge> {
    const earlier =
      attempt > 1 ? (await this.provider.listCharges({ invoiceId: invoice.id })).find((c) => c.status === 'succeeded') : undefined;
    return (
      earlier ??
      this.provider.charge({
        idempotencyKey,
        customerId: invoice.customerId,
        invoiceId: invoice.id,
        amountMinor: toMinorUnits(invoice.total, invoice.currency),
        currency: invoice.currency,
        description: `Invoice ${invoice.id}`,
      })
    );
  }

  private async recordOutcome(
    client: Queryable,
    invoiceId: string,
    attempt: number,
    charge: ProviderCharge,
    actor: AuditActor,
  ): Promise<ChargeOutcome> {
    const invoice = (await lockInvoice(client, invoiceId))!;
    const now = this.clock.now();
    if (charge.status === 'declined') {
      await recordDeclinedAttempt(
        client,
        invoiceId,
        attempt,
        { providerChargeId: charge.id, declineCode: charge.declineCode ?? null },
        now,
      );
      await recordAudit(client, {
        actor,
        action: 'charge.declined',
        subjectType: 'invoice',
        subjectId: invoiceId,
        details: { attempt, provider_charge_id: charge.id, decline_code: charge.declineCode ?? null },
      });
      return { outcome: 'declined', declineCode: charge.declineCode ?? 'declined' };
    }
    const news = await recordSucceededCharge(
      client,
      invoiceId,
      { idempotencyKey: charge.idempotencyKey, providerChargeId: charge.id },
      now,
    );
    if (invoice.status === 'finalized' || invoice.status === 'payment_failed') await setInvoiceStatus(client, invoiceId, 'paid', now);
    if (news) {
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
    return { outcome: invoice.status === 'void' ? 'void' : 'paid' };
  }
}
