import type { Clock } from '../clock';
import { drawCreditsAtFinalization, reverseCreditDrawdowns } from '../credits/drawdown';
import { CustomerService } from '../customers/service';
import { recordAudit, type AuditActor } from '../db/audit';
import type { Pool } from '../db/pool';
import { inTransaction } from '../db/transaction';
import { ok, refuse, type Result } from '../domain/result';
import { auditActorOf, customerNamed, seesCustomerId, type Actor } from '../keys/principal';
import { buildInvoice } from './builder';
import {
  findInvoice,
  getInvoice,
  listInvoices,
  lockCustomerInvoicing,
  lockInvoice,
  saveDraft,
  setInvoiceStatus,
  setInvoiceVoid,
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
   * Freezes a draft invoice, after drawing the customer's prepaid credits onto it (a 'credit'
   * line, src/credits/drawdown.ts); an invoice already past draft is reported as it is.
   */
  async finalize(
    invoiceId: string,
    actor: AuditActor,
  ): Promise<Result<{ invoiceId: string; status: InvoiceStatus; total: string; currency: string }, 'unknown_invoice'>> {
    return inTransaction(this.pool, async (client) => {
      const invoice = await lockInvoice(client, invoiceId);
      if (!invoice) return vanishedInvoice(invoiceId);
      const { currency } = invoice;
      if (invoice.status !== 'draft') return ok({ invoiceId, status: invoice.status, total: invoice.total, currency });
      const { total } = await drawCreditsAtFinalization(client, invoice, actor, this.clock.now());
      await setInvoiceStatus(client, invoiceId, 'finalized', this.clock.now());
      await recordAudit(client, {
        actor,
        action: 'invoice.finalized',
        subjectType: 'invoice',
        subjectId: invoiceId,
        before: { status: 'draft' },
        after: { status: 'finalized', total, currency },
      });
      return ok({ invoiceId, status: 'finalized', total, currency });
    });
  }
}
