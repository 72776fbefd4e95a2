import type { Clock } from '../clock';
import { recordRedemptions } from '../coupons/store';
import { CustomerService } from '../customers/service';
import { recordAudit, type AuditActor } from '../db/audit';
import type { Pool } from '../db/pool';
import { inTransaction } from '../db/transaction';
import { ok, refuse, type Result } from '../domain/result';
import { auditActorOf, customerNamed, seesCustomerId, type Actor } from '../keys/principal';
import { billedPeriodAt, getActiveSubscription } from '../subscriptions/store';
import { buildInvoice } from './builder';
import { drawCreditsAtFinalization, reverseCreditDrawdowns } from './credit-drawdown';
import { renderInvoiceDocument, type DocumentFormat, type InvoiceDocument } from './documents/render';
import type { InvoiceIssuer } from './issuer';
import { lockCustomerInvoicing } from '../subscriptions/invoicing-cut';
import { nextInvoiceNumber } from './numbering';
import { buildInterimInvoice } from './progressive';
import {
  findInterimInvoice,
  findInvoice,
  getInvoice,
  issueInvoice,
  listInvoices,
  lockInvoice,
  saveDraft,
  setInvoiceVoid,
  type DraftContent,
  type Invoice,
  type InvoiceStatus,
} from './store';

export interface InvoiceQuery {
  /** External id of a customer; a key restricted to one customer queries its own when it names none. */
  customer?: string;
  status?: InvoiceStatus;
  /** Invoices whose period starts in [periodFrom, periodTo). */
  periodFrom?: Date;
  periodTo?: Date;
}

/** The period a billing workflow closed, its instants in ISO 8601 as the workflow names them (the audit entry keeps them so). */
export interface DraftRequest {
  subscriptionId: string;
  customerId: string;
  planCode: string;
  periodStart: string;
  periodEnd: string;
}

/** The invoice the current period would get if it closed now: priced live, never saved. */
export interface UpcomingInvoice extends DraftContent {
  /** External id of the customer. */
  customer: string;
  /** When it was priced: usage stored after this instant is not in it. */
  asOf: Date;
}

/** An interim invoice the billing workflow cuts at a spend threshold: [periodStart, until), number `sequence` in the period. */
export interface InterimDraftRequest {
  subscriptionId: string;
  customerId: string;
  planCode: string;
  periodStart: string;
  until: string;
  sequence: number;
  threshold: string;
}

const unknownInvoice = (id: string) => refuse('not_found', 'unknown_invoice', `No invoice ${id}.`);
/** An invoice a workflow drafted is gone: said as the worker has always said it. */
const vanishedInvoice = (id: string) => refuse('not_found', 'unknown_invoice', `Invoice ${id} does not exist.`);

/** Invoices as every adapter reaches them; a key restricted to one customer sees other customers' as absent. */
export class InvoiceService {
  constructor(
    private readonly pool: Pool,
    private readonly clock: Clock,
    private readonly customers = new CustomerService(pool),
  ) {}

  /** At most `limit` invoices, newest period first, after the cursor `after`. */
  async list(
    actor: Actor,
    query: InvoiceQuery,
    limit: number,
    after?: { periodStart: Date; id: string },
  ): Promise<Result<Invoice[], 'unknown_customer'>> {
    const externalId = customerNamed(actor, query.customer);
    let customerId: string | undefined;
    if (externalId !== undefined) {
      const customer = await this.customers.get(actor, externalId);
      if (!customer.ok) return customer;
      customerId = customer.value.id;
    }
    const filter = {
      ...(customerId ? { customerId } : {}),
      ...(query.status ? { status: query.status } : {}),
      ...(query.periodFrom ? { periodFrom: query.periodFrom } : {}),
      ...(query.periodTo ? { periodTo: query.periodTo } : {}),
    };
    return ok(await listInvoices(this.pool, filter, limit, after));
  }

  /** The invoice; another customer's is absent to a key restricted to one (its charge: src/payments/charge-history.ts). */
  async get(actor: Actor, id: string): Promise<Result<Invoice, 'unknown_invoice'>> {
    const invoice = await getInvoice(this.pool, id);
    if (!invoice || !seesCustomerId(actor, invoice.customerId)) return unknownInvoice(id);
    return ok(invoice);
  }

  /**
   * The customer's upcoming invoice: the active subscription's current period up to now, built
   * exactly as the period's draft will be (src/invoices/builder.ts: usage from the stored events,
   * the plan's pricing, late-usage adjustments of up to `lookbackInvoices` earlier invoices) but
   * never saved, so asking for it changes nothing.
   */
  async upcoming(
    actor: Actor,
    externalId: string,
    lookbackInvoices: number,
  ): Promise<Result<UpcomingInvoice, 'unknown_customer' | 'no_active_subscription'>> {
    const customer = await this.customers.get(actor, externalId);
    if (!customer.ok) return customer;
    const subscription = await getActiveSubscription(this.pool, customer.value.id);
    if (!subscription) return refuse('not_found', 'no_active_subscription', `Customer "${externalId}" has no active subscription.`);
    const asOf = this.clock.now();
    const { plan, cancelAt } = subscription;
    const period = billedPeriodAt(subscription, asOf);
    const draft = await buildInvoice(
      this.pool,
      {
        subscriptionId: subscription.id,
        customerId: customer.value.id,
        planCode: plan.id,
        periodStart: period.start,
        // A cancellation cuts the final period short; its invoice ends there.
        periodEnd: cancelAt && cancelAt < period.end ? cancelAt : period.end,
      },
      { lookbackInvoices },
    );
    return ok({ ...draft, customer: externalId, asOf });
  }

  /**
   * The invoice's document (printable HTML or PDF), rendered from its frozen data. A draft may
   * still change and has no number, so it has none (409 `invoice_not_issued`), nor has a draft
   * voided before it was finalized; a void invoice that was issued renders, marked VOID.
   */
  async document(
    actor: Actor,
    id: string,
    format: DocumentFormat,
  ): Promise<Result<InvoiceDocument, 'unknown_invoice' | 'invoice_not_issued'>> {
    const invoice = await this.get(actor, id);
    if (!invoice.ok) return invoice;
    if (invoice.value.number === null)
      return refuse(
        'conflict',
        'invoice_not_issued',
        invoice.value.status === 'draft'
          ? `Invoice ${id} is a draft: it has a document once it is finalized.`
          : `Invoice ${id} was voided as a draft, before it was issued: it has no document.`,
        { status: invoice.value.status },
      );
    return ok(await renderInvoiceDocument(invoice.value, format));
  }

  /**
   * Voids the invoice with a reason and an audit entry; voiding it again converges. A paid invoice
   * is refused: money moved, which calls for a refund at the provider, not a void.
   */
  async void(
    actor: Actor,
    id: string,
    reason: string,
  ): Promise<Result<{ outcome: 'voided' | 'already_void'; invoice: Invoice }, 'unknown_invoice' | 'invoice_paid'>> {
    return inTransaction(this.pool, async (client) => {
      const locked = await lockInvoice(client, id);
      if (!locked || !seesCustomerId(actor, locked.customerId)) return unknownInvoice(id);
      if (locked.status === 'paid')
        return refuse('conflict', 'invoice_paid', `Invoice ${id} is paid; refund it at the payment provider instead of voiding it.`);
      if (locked.status !== 'void') {
        await setInvoiceVoid(client, id, reason, this.clock.now());
        await reverseCreditDrawdowns(client, locked, auditActorOf(actor), this.clock.now());
        await recordAudit(client, {
          actor: auditActorOf(actor),
          action: 'invoice.voided',
          subjectType: 'invoice',
          subjectId: id,
          details: { reason },
          before: { status: locked.status, total: locked.total },
          after: { status: 'void' },
        });
      }
      return ok({ outcome: locked.status === 'void' ? 'already_void' : 'voided', invoice: (await getInvoice(client, id))! });
    });
  }

  /**
   * The invoice of a closed period, as a draft: usage recomputed from the stored events for
   * [start, end), priced on the plan, with adjustment lines for late usage of up to
   * `lookbackInvoices` earlier invoices. Saved under (customer, period start), so drafting again
   * rewrites the same draft (picking up events stored since) and, once the invoice is finalized,
   * returns it untouched. Data that cannot be invoiced throws InvoiceInputError or PricingError.
   */
  async draft(request: DraftRequest, lookbackInvoices: number, actor: AuditActor): Promise<{ invoiceId: string }> {
    const period = { ...request, periodStart: new Date(request.periodStart), periodEnd: new Date(request.periodEnd) };
    return inTransaction(this.pool, async (client) => {
      await lockCustomerInvoicing(client, period.customerId);
      const existing = await findInvoice(client, period.customerId, period.periodStart);
      if (existing && existing.status !== 'draft') return { invoiceId: existing.id };
      const draft = await buildInvoice(client, period, { lookbackInvoices, draftId: existing?.id });
      const saved = await saveDraft(client, draft, this.clock.now());
      // Finalized meanwhile (finalize takes the row lock, not this one): that invoice stands.
      if (!saved) return { invoiceId: existing!.id };
      await recordAudit(client, {
        actor,
        action: saved.created ? 'invoice.drafted' : 'invoice.redrafted',
        subjectType: 'invoice',
        subjectId: saved.id,
        details: { customer_id: draft.customerId, period_start: request.periodStart, period_end: request.periodEnd },
        after: { total: draft.total, currency: draft.currency, usage: draft.usage, lines: draft.lines.length },
      });
      return { invoiceId: saved.id };
    });
  }

  /**
   * The period's interim invoice number `sequence`, as a draft: usage of [period start, until)
   * priced from the period start, less what earlier interim invoices of the period billed. Saved
   * under (customer, period start, 'interim', sequence): drafting again rewrites the draft and,
   * once it is finalized, returns it untouched. Under the customer's invoicing lock, which a
   * cancellation takes too: the cut never passes a cancellation recorded before it, and a
   * cancellation recorded after it never ends billing before the cut (cancelSubscription).
   */
  async draftInterim(request: InterimDraftRequest, actor: AuditActor): Promise<{ invoiceId: string }> {
    const interim = {
      ...request,
      periodStart: new Date(request.periodStart),
      periodEnd: new Date(request.until),
    };
    return inTransaction(this.pool, async (client) => {
      await lockCustomerInvoicing(client, interim.customerId);
      const existing = await findInterimInvoice(client, interim.customerId, interim.periodStart, interim.sequence);
      if (existing && existing.status !== 'draft') return { invoiceId: existing.id };
      const draft = await buildInterimInvoice(client, interim);
      const saved = await saveDraft(client, draft, this.clock.now());
      if (!saved) return { invoiceId: existing!.id };
      await recordAudit(client, {
        actor,
        action: saved.created ? 'invoice.drafted' : 'invoice.redrafted',
        subjectType: 'invoice',
        subjectId: saved.id,
        details: {
          customer_id: draft.customerId,
          kind: 'interim',
          sequence: request.sequence,
          threshold: request.threshold,
          period_start: request.periodStart,
          // The cut: `until`, or the cancellation when that came first (src/invoices/progressive.ts).
          period_end: draft.periodEnd.toISOString(),
        },
        after: { total: draft.total, currency: draft.currency, usage: draft.usage, lines: draft.lines.length },
      });
      return { invoiceId: saved.id };
    });
  }

  /**
   * Freezes a draft invoice and issues it: the next number of the issuer's series and a snapshot
   * of seller and customer, in the same transaction. An invoice already past draft is reported as
   * it is, so a retried finalize never takes a second number; one that fails before it commits
   * gives its number back (src/invoices/numbering.ts). The coupons it discounts with use up a period
   * now, once: a draft rebuilt any number of times uses none. The customer's prepaid credits are drawn
   * onto it first (a 'credit' line, ./credit-drawdown.ts), while it is still a draft.
   */
  async finalize(
    invoiceId: string,
    actor: AuditActor,
    issuer: InvoiceIssuer,
  ): Promise<Result<{ invoiceId: string; status: InvoiceStatus; total: string; currency: string }, 'unknown_invoice'>> {
    return inTransaction(this.pool, async (client) => {
      const invoice = await lockInvoice(client, invoiceId);
      if (!invoice) return vanishedInvoice(invoiceId);
      const { currency } = invoice;
      if (invoice.status !== 'draft') return ok({ invoiceId, status: invoice.status, total: invoice.total, currency });
      const now = this.clock.now();
      const { total } = await drawCreditsAtFinalization(client, invoice, actor, now);
      const number = await nextInvoiceNumber(client, issuer.numberPrefix, now);
      await issueInvoice(client, invoiceId, { number, seller: issuer.seller, at: now });
      await recordRedemptions(client, invoiceId, actor, now);
      await recordAudit(client, {
        actor,
        action: 'invoice.finalized',
        subjectType: 'invoice',
        subjectId: invoiceId,
        before: { status: 'draft' },
        after: { status: 'finalized', total, currency, number },
      });
      return ok({ invoiceId, status: 'finalized', total, currency });
    });
  }
}
