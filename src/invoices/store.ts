import type { Queryable } from '../db/transaction';
import type { CurrencyCode } from '../domain/currencies';
import type { BreakdownRow, ChargeModel } from '../domain/pricing/schema';
import type { SegmentRef } from '../domain/segment-pricing';

export const invoiceStatuses = ['draft', 'finalized', 'paid', 'payment_failed', 'void'] as const;
export type InvoiceStatus = (typeof invoiceStatuses)[number];
export const invoiceLineTypes = ['base_fee', 'usage', 'minimum_commitment_true_up', 'adjustment'] as const;
export type InvoiceLineType = (typeof invoiceLineTypes)[number];

export interface InvoiceLine {
  position: number;
  type: InvoiceLineType;
  meter: string | null;
  model: ChargeModel | null;
  quantity: string | null;
  description: string;
  exactAmount: string;
  amount: string;
  breakdown: BreakdownRow[];
  /** For an adjustment: the finalized invoice whose period the late usage belongs to. */
  adjusts: { invoiceId: string; periodStart: Date; periodEnd: Date } | null;
  /** The plan segment the line bills when plan changes split the period (an adjustment: the segment it corrects). */
  segment: SegmentRef | null;
}

export interface Invoice {
  id: string;
  customerId: string;
  /** The customer's external id. */
  customer: string;
  subscriptionId: string;
  planCode: string;
  currency: CurrencyCode;
  periodStart: Date;
  periodEnd: Date;
  status: InvoiceStatus;
  /** Exact usage per meter over [periodStart, periodEnd), recomputed from the stored events. */
  usage: Record<string, string>;
  total: string;
  createdAt: Date;
  finalizedAt: Date | null;
  paidAt: Date | null;
  paymentFailedAt: Date | null;
  voidedAt: Date | null;
  voidReason: string | null;
  lines: InvoiceLine[];
}

interface InvoiceRow {
  id: string;
  customer_id: string;
  external_id: string;
  subscription_id: string;
  plan_code: string;
  currency: CurrencyCode;
  period_start: Date;
  period_end: Date;
  status: InvoiceStatus;
  usage: Record<string, string>;
  total: string;
  created_at: Date;
  finalized_at: Date | null;
  paid_at: Date | null;
  payment_failed_at: Date | null;
  voided_at: Date | null;
  void_reason: string | null;
}

interface LineRow {
  invoice_id: string;
  position: number;
  type: InvoiceLineType;
  meter: string | null;
  model: ChargeModel | null;
  quantity: string | null;
  description: string;
  exact_amount: string;
  amount: string;
  breakdown: BreakdownRow[];
  adjusts_invoice_id: string | null;
  adjusts_period_start: Date | null;
  adjusts_period_end: Date | null;
  segment_plan_code: string | null;
  segment_start: Date | null;
  segment_end: Date | null;
}

const invoiceColumns = `i.id, i.customer_id, c.external_id, i.subscription_id, i.plan_code, i.currency, i.period_start, i.period_end,
  i.status, i.usage, i.total::text, i.created_at, i.finalized_at, i.paid_at, i.payment_failed_at, i.voided_at, i.void_reason`;

const toLine = (r: LineRow): InvoiceLine => ({
  position: r.position,
  type: r.type,
  meter: r.meter,
  model: r.model,
  quantity: r.quantity,
  description: r.description,
  exactAmount: r.exact_amount,
  amount: r.amount,
  breakdown: r.breakdown,
  adjusts: r.adjusts_invoice_id
    ? { invoiceId: r.adjusts_invoice_id, periodStart: r.adjusts_period_start!, periodEnd: r.adjusts_period_end! }
    : null,
  segment: r.segment_plan_code
    ? { planCode: r.segment_plan_code, start: r.segment_start!.toISOString(), end: r.segment_end!.toISOString() }
    : null,
});

async function withLines(db: Queryable, rows: InvoiceRow[]): Promise<Invoice[]> {
  if (rows.length === 0) return [];
  const { rows: lines } = await db.query<LineRow>(
    `select invoice_id, position, type, meter, model, quantity::text, description, exact_amount::text, amount::text, breakdown,
            adjusts_invoice_id, adjusts_period_start, adjusts_period_end, segment_plan_code, segment_start, segment_end
       from invoice_lines where invoice_id = any($1) order by invoice_id, position`,
    [rows.map((r) => r.id)],
  );
  return rows.map((r) => ({
    id: r.id,
    customerId: r.customer_id,
    customer: r.external_id,
    subscriptionId: r.subscription_id,
    planCode: r.plan_code,
    currency: r.currency,
    periodStart: r.period_start,
    periodEnd: r.period_end,
    status: r.status,
    usage: r.usage,
    total: r.total,
    createdAt: r.created_at,
    finalizedAt: r.finalized_at,
    paidAt: r.paid_at,
    paymentFailedAt: r.payment_failed_at,
    voidedAt: r.voided_at,
    voidReason: r.void_reason,
    lines: lines.filter((l) => l.invoice_id === r.id).map(toLine),
  }));
}

async function select(db: Queryable, where: string, params: unknown[], tail = ''): Promise<Invoice[]> {
  const { rows } = await db.query<InvoiceRow>(
    `select ${invoiceColumns} from invoices i join customers c on c.id = i.customer_id where ${where} ${tail}`,
    params,
  );
  return withLines(db, rows);
}

export const getInvoice = async (db: Queryable, id: string) => (await select(db, 'i.id = $1', [id]))[0];

/** The invoice of a customer's period, found by its natural key. */
export const findInvoice = async (db: Queryable, customerId: string, periodStart: Date) =>
  (await select(db, 'i.customer_id = $1 and i.period_start = $2', [customerId, periodStart]))[0];

export interface InvoiceFilter {
  customerId?: string;
  status?: InvoiceStatus;
  /** Invoices whose period starts in [from, to). */
  periodFrom?: Date;
  periodTo?: Date;
}

/** Newest period first, keyset-paginated on (period_start, id). */
export async function listInvoices(
  db: Queryable,
  filter: InvoiceFilter,
  limit: number,
  after?: { periodStart: Date; id: string },
): Promise<Invoice[]> {
  return select(
    db,
    `($1::uuid is null or i.customer_id = $1) and ($2::text is null or i.status = $2)
     and ($3::timestamptz is null or i.period_start >= $3) and ($4::timestamptz is null or i.period_start < $4)
     and ($5::timestamptz is null or (i.period_start, i.id) < ($5, $6::uuid))`,
    [
      filter.customerId ?? null,
      filter.status ?? null,
      filter.periodFrom ?? null,
      filter.periodTo ?? null,
      after?.periodStart ?? null,
      after?.id ?? null,
    ],
    `order by i.period_start desc, i.id desc limit ${Math.trunc(limit)}`,
  );
}

/**
 * Of the customer's last `count` finalized invoices (paid or not, not void) before `before` — the
 * configured lookback — those that late usage may still adjust. An invoice reconciliation has
 * corrected with a credit note is settled there: adjusting it here too would bill the same usage
 * twice, so the next reconciliation handles its late usage instead. An invoice whose period's raw
 * events were archived (src/retention/) cannot be recomputed, so it is not adjusted either.
 */
export async function adjustableInvoices(db: Queryable, customerId: string, before: Date, count: number): Promise<Invoice[]> {
  const newestFirst = await select(
    db,
    `i.id in (select id from invoices where customer_id = $1 and status in ('finalized', 'paid', 'payment_failed') and period_start < $2
              order by period_start desc limit ${Math.trunc(count)})
     and not exists (select 1 from credit_notes c where c.invoice_id = i.id)
     and not exists (select 1 from archived_periods a where a.invoice_id = i.id)`,
    [customerId, before],
    'order by i.period_start desc',
  );
  return newestFirst.reverse();
}

/** Adjustment lines already billed for `invoiceId` on other, non-void invoices. */
export async function adjustmentsFor(db: Queryable, invoiceId: string, exceptOn?: string): Promise<InvoiceLine[]> {
  const { rows } = await db.query<LineRow>(
    `select l.invoice_id, l.position, l.type, l.meter, l.model, l.quantity::text, l.description, l.exact_amount::text, l.amount::text, l.breakdown,
            l.adjusts_invoice_id, l.adjusts_period_start, l.adjusts_period_end, l.segment_plan_code, l.segment_start, l.segment_end
       from invoice_lines l join invoices i on i.id = l.invoice_id
      where l.adjusts_invoice_id = $1 and i.status <> 'void' and ($2::uuid is null or l.invoice_id <> $2)
      order by i.period_start, l.position`,
    [invoiceId, exceptOn ?? null],
  );
  return rows.map(toLine);
}

export interface DraftContent {
  customerId: string;
  subscriptionId: string;
  planCode: string;
  currency: CurrencyCode;
  periodStart: Date;
  periodEnd: Date;
  usage: Record<string, string>;
  total: string;
  lines: Omit<InvoiceLine, 'position'>[];
}

/**
 * Writes the draft under its natural key (customer, period start), replacing the lines of an
 * earlier draft. Returns undefined when the invoice has left draft: it is then frozen and the
 * caller reads it as it is. Run inside a transaction.
 */
export async function saveDraft(db: Queryable, draft: DraftContent, now: Date): Promise<{ id: string; created: boolean } | undefined> {
  const { rows } = await db.query<{ id: string; created: boolean }>(
    `insert into invoices as i (customer_id, subscription_id, plan_code, currency, period_start, period_end, usage, total, created_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     on conflict (customer_id, period_start) do update
       set subscription_id = excluded.subscription_id, plan_code = excluded.plan_code, currency = excluded.currency,
           period_end = excluded.period_end, usage = excluded.usage, total = excluded.total
       where i.status = 'draft'
     returning i.id, (xmax = 0) as created`,
    [
      draft.customerId,
      draft.subscriptionId,
      draft.planCode,
      draft.currency,
      draft.periodStart,
      draft.periodEnd,
      JSON.stringify(draft.usage),
      draft.total,
      now,
    ],
  );
  const saved = rows[0];
  if (!saved) return undefined;
  await db.query('delete from invoice_lines where invoice_id = $1', [saved.id]);
  let position = 0;
  for (const line of draft.lines) {
    await db.query(
      `insert into invoice_lines (invoice_id, position, type, meter, model, quantity, description, exact_amount, amount, breakdown,
                                  adjusts_invoice_id, adjusts_period_start, adjusts_period_end, segment_plan_code, segment_start, segment_end)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
      [
        saved.id,
        ++position,
        line.type,
        line.meter,
        line.model,
        line.quantity,
        line.description,
        line.exactAmount,
        line.amount,
        JSON.stringify(line.breakdown),
        line.adjusts?.invoiceId ?? null,
        line.adjusts?.periodStart ?? null,
        line.adjusts?.periodEnd ?? null,
        line.segment?.planCode ?? null,
        line.segment?.start ?? null,
        line.segment?.end ?? null,
      ],
    );
  }
  return saved;
}

/** What a state change of an invoice decides on. */
export type LockedInvoice = Pick<Invoice, 'id' | 'status' | 'total' | 'currency' | 'customerId'>;

/**
 * Serializes the drafting of one customer's invoices until the caller's transaction ends:
 * adjustments read what the customer's other drafts billed.
 */
export async function lockCustomerInvoicing(db: Queryable, customerId: string): Promise<void> {
  await db.query('select pg_advisory_xact_lock(hashtext($1))', [`invoice:${customerId}`]);
}

/** Locks the invoice row for a state change in the caller's transaction. */
export async function lockInvoice(db: Queryable, id: string): Promise<LockedInvoice | undefined> {
  const { rows } = await db.query<{ id: string; status: InvoiceStatus; total: string; currency: CurrencyCode; customer_id: string }>(
    'select id, status, total::text, currency, customer_id from invoices where id = $1 for update',
    [id],
  );
  const r = rows[0];
  return r && { id: r.id, status: r.status, total: r.total, currency: r.currency, customerId: r.customer_id };
}

const transitionColumn: Partial<Record<InvoiceStatus, string>> = {
  finalized: 'finalized_at',
  paid: 'paid_at',
  payment_failed: 'payment_failed_at',
};

/** Moves a locked invoice to `status` (the table's trigger refuses moves the lifecycle does not allow). */
export async function setInvoiceStatus(
  db: Queryable,
  id: string,
  status: Exclude<InvoiceStatus, 'draft' | 'void'>,
  at: Date,
): Promise<void> {
  await db.query(`update invoices set status = $2, ${transitionColumn[status]} = $3 where id = $1`, [id, status, at]);
}

/** Voids a locked invoice with its reason; the caller refuses what may not be voided. */
export async function setInvoiceVoid(db: Queryable, id: string, reason: string, at: Date): Promise<void> {
  await db.query(`update invoices set status = 'void', voided_at = $3, void_reason = $2 where id = $1`, [id, reason, at]);
}
