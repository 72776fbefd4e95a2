import type { Queryable } from '../db/transaction';
import type { CurrencyCode } from '../domain/currencies';
import { invoiceTotals, type InvoiceTotals } from '../domain/invoice-pipeline';
import type { BreakdownRow, ChargeModel } from '../domain/pricing/schema';
import type { BillTo, Seller } from './issuer';
import type { SegmentRef } from '../domain/segment-pricing';

export const invoiceStatuses = ['draft', 'finalized', 'paid', 'payment_failed', 'void'] as const;
export type InvoiceStatus = (typeof invoiceStatuses)[number];
export const invoiceLineTypes = [
  'base_fee',
  'usage',
  'minimum_commitment_true_up',
  'adjustment',
  'interim_billed',
  'discount',
  'tax',
  'credit',
] as const;
export type InvoiceLineType = (typeof invoiceLineTypes)[number];
/** The period's own invoice, or an interim one issued at a spend threshold (src/invoices/progressive.ts). */
export const invoiceKinds = ['period', 'interim'] as const;
export type InvoiceKind = (typeof invoiceKinds)[number];

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
  /** For a discount line: the coupon application it comes from. */
  discount?: { applicationId: string; couponCode: string } | null;
  /** For a tax line: its rate, what it applies to, and whether the other lines already contain it. */
  tax?: { rateId: string; code: string; percentage: string; inclusive: boolean; base: string } | null;
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
  /** With sequence, part of the natural key (customer, period start, kind, sequence). */
  kind: InvoiceKind;
  /** 0 for the period invoice; 1, 2, … for the period's interim invoices. */
  sequence: number;
  /** The spend threshold an interim invoice was issued for; null for the period invoice. */
  threshold: string | null;
  periodStart: Date;
  /** For an interim invoice: the instant it was cut (it bills [periodStart, periodEnd)). */
  periodEnd: Date;
  status: InvoiceStatus;
  /** PREFIX-YYYY-NNNNNN, given at finalization (gapless per series: src/invoices/numbering.ts); null for a draft. */
  number: string | null;
  /** Snapshotted at finalization; null for a draft, and for an invoice finalized before invoice numbers existed (migration 0019). */
  seller: Seller | null;
  /** The customer as it was at finalization; null for a draft. */
  billTo: BillTo | null;
  /** Exact usage per meter over [periodStart, periodEnd), recomputed from the stored events. */
  usage: Record<string, string>;
  total: string;
  /** Net, tax and gross (= total) from the lines (src/domain/invoice-pipeline.ts). */
  totals: InvoiceTotals;
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
  kind: InvoiceKind;
  sequence: number;
  threshold: string | null;
  period_start: Date;
  period_end: Date;
  status: InvoiceStatus;
  number: string | null;
  seller: { name: string; address: string[]; tax_id: string | null; email: string | null } | null;
  bill_to: { name: string; external_id: string } | null;
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
  coupon_application_id: string | null;
  coupon_code: string | null;
  tax_rate_id: string | null;
  tax_code: string | null;
  tax_percentage: string | null;
  tax_base: string | null;
  tax_inclusive: boolean | null;
  segment_plan_code: string | null;
  segment_start: Date | null;
  segment_end: Date | null;
}

/** Line columns of `invoice_lines l`, with the coupon and tax rate a discount or tax line names. */
const lineColumns = `l.invoice_id, l.position, l.type, l.meter, l.model, l.quantity::text, l.description, l.exact_amount::text, l.amount::text,
  l.breakdown, l.adjusts_invoice_id, l.adjusts_period_start, l.adjusts_period_end,
  l.coupon_application_id, ca.coupon_code, l.tax_rate_id, tr.code as tax_code, tr.percentage::text as tax_percentage,
  l.tax_base::text, l.tax_inclusive, l.segment_plan_code, l.segment_start, l.segment_end`;
const lineJoins = `left join coupon_applications ca on ca.id = l.coupon_application_id left join tax_rates tr on tr.id = l.tax_rate_id`;

const invoiceColumns = `i.id, i.customer_id, c.external_id, i.subscription_id, i.plan_code, i.currency, i.kind, i.sequence, i.threshold::text,
  i.period_start, i.period_end, i.status, i.number, i.seller, i.bill_to, i.usage, i.total::text, i.created_at, i.finalized_at, i.paid_at, i.payment_failed_at, i.voided_at, i.void_reason`;

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
  discount: r.coupon_application_id ? { applicationId: r.coupon_application_id, couponCode: r.coupon_code! } : null,
  tax: r.tax_rate_id
    ? { rateId: r.tax_rate_id, code: r.tax_code!, percentage: r.tax_percentage!, inclusive: r.tax_inclusive!, base: r.tax_base! }
    : null,
  segment: r.segment_plan_code
    ? { planCode: r.segment_plan_code, start: r.segment_start!.toISOString(), end: r.segment_end!.toISOString() }
    : null,
});

async function withLines(db: Queryable, rows: InvoiceRow[]): Promise<Invoice[]> {
  if (rows.length === 0) return [];
  const { rows: lines } = await db.query<LineRow>(
    `select ${lineColumns} from invoice_lines l ${lineJoins} where l.invoice_id = any($1) order by l.invoice_id, l.position`,
    [rows.map((r) => r.id)],
  );
  return rows.map((r) => {
    const own = lines.filter((l) => l.invoice_id === r.id).map(toLine);
    return {
      id: r.id,
      customerId: r.customer_id,
      customer: r.external_id,
      subscriptionId: r.subscription_id,
      planCode: r.plan_code,
      currency: r.currency,
      kind: r.kind,
      sequence: r.sequence,
      threshold: r.threshold,
      periodStart: r.period_start,
      periodEnd: r.period_end,
      status: r.status,
      number: r.number,
      seller: r.seller && { name: r.seller.name, address: r.seller.address, taxId: r.seller.tax_id, email: r.seller.email },
      billTo: r.bill_to && { name: r.bill_to.name, externalId: r.bill_to.external_id },
      usage: r.usage,
      total: r.total,
      totals: invoiceTotals(
        r.currency,
        // Credits applied pay the gross; they are not part of it.
        own
          .filter((l) => l.type !== 'credit')
          .map((l) => ({ type: l.type, meter: l.meter, amount: l.amount, inclusive: l.tax?.inclusive ?? null })),
      ),
      createdAt: r.created_at,
      finalizedAt: r.finalized_at,
      paidAt: r.paid_at,
      paymentFailedAt: r.payment_failed_at,
      voidedAt: r.voided_at,
      voidReason: r.void_reason,
      lines: own,
    };
  });
}

async function select(db: Queryable, where: string, params: unknown[], tail = ''): Promise<Invoice[]> {
  const { rows } = await db.query<InvoiceRow>(
    `select ${invoiceColumns} from invoices i join customers c on c.id = i.customer_id where ${where} ${tail}`,
    params,
  );
  return withLines(db, rows);
}

export const getInvoice = async (db: Queryable, id: string) => (await select(db, 'i.id = $1', [id]))[0];

/** The invoice of a customer's period (kind 'period'), found by its natural key. */
export const findInvoice = async (db: Queryable, customerId: string, periodStart: Date) =>
  (await select(db, `i.customer_id = $1 and i.period_start = $2 and i.kind = 'period'`, [customerId, periodStart]))[0];

/** The period's interim invoice number `sequence`, found by its natural key. */
export const findInterimInvoice = async (db: Queryable, customerId: string, periodStart: Date, sequence: number) =>
  (
    await select(db, `i.customer_id = $1 and i.period_start = $2 and i.kind = 'interim' and i.sequence = $3`, [
      customerId,
      periodStart,
      sequence,
    ])
  )[0];

/**
 * What interim invoice `e` billed: its total before prepaid credits paid part of it (finalization
 * turns the total into the amount due, ./credit-drawdown.ts). A later invoice of the period
 * deducts this, whoever paid it; deducting the amount due would bill credit-paid usage twice.
 */
const interimBilledAmount = `(e.total - coalesce((select sum(l.amount) from invoice_lines l where l.invoice_id = e.id and l.type = 'credit'), 0))`;

/**
 * The period's interim invoices that billed something, numbered below `beforeSequence` (all when
 * absent), with what each billed: what a later invoice of the period deducts. Void ones billed
 * nothing; drafts count, as the workflow finalizes each before it drafts the next invoice of the period.
 */
export async function interimInvoicesBilled(
  db: Queryable,
  customerId: string,
  periodStart: Date,
  beforeSequence?: number,
): Promise<Array<{ id: string; sequence: number; total: string }>> {
  const { rows } = await db.query<{ id: string; sequence: number; total: string }>(
    `select e.id, e.sequence, ${interimBilledAmount}::text as total from invoices e
      where e.customer_id = $1 and e.period_start = $2 and e.kind = 'interim' and e.status <> 'void' and ($3::int is null or e.sequence < $3)
      order by e.sequence`,
    [customerId, periodStart, beforeSequence ?? null],
  );
  return rows;
}

/** For each of these invoices, the interim invoices it deducts (as interimInvoicesBilled says them). */
export async function interimInvoicesDeducted(
  db: Queryable,
  invoiceIds: string[],
): Promise<Map<string, Array<{ sequence: number; total: string }>>> {
  const { rows } = await db.query<{ id: string; sequence: number; total: string }>(
    `select i.id, e.sequence, ${interimBilledAmount}::text as total
       from invoices i
       join invoices e on e.customer_id = i.customer_id and e.period_start = i.period_start and e.kind = 'interim' and e.status <> 'void'
                      and (i.kind = 'period' or e.sequence < i.sequence)
      where i.id = any($1)
      order by i.id, e.sequence`,
    [invoiceIds],
  );
  const deducted = new Map<string, Array<{ sequence: number; total: string }>>();
  for (const r of rows) {
    const interim = { sequence: r.sequence, total: r.total };
    const earlier = deducted.get(r.id);
    if (earlier) earlier.push(interim);
    else deducted.set(r.id, [interim]);
  }
  return deducted;
}

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
    `i.id in (select id from invoices where customer_id = $1 and kind = 'period' and status in ('finalized', 'paid', 'payment_failed') and period_start < $2
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
    `select ${lineColumns}
       from invoice_lines l join invoices i on i.id = l.invoice_id ${lineJoins}
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
  kind: InvoiceKind;
  sequence: number;
  threshold: string | null;
  periodStart: Date;
  periodEnd: Date;
  usage: Record<string, string>;
  total: string;
  lines: Omit<InvoiceLine, 'position'>[];
}

/**
 * Writes the draft under its natural key (customer, period start, kind, sequence), replacing the lines of an
 * earlier draft. Returns undefined when the invoice has left draft: it is then frozen and the
 * caller reads it as it is. Run inside a transaction.
 */
export async function saveDraft(db: Queryable, draft: DraftContent, now: Date): Promise<{ id: string; created: boolean } | undefined> {
  const { rows } = await db.query<{ id: string; created: boolean }>(
    `insert into invoices as i (customer_id, subscription_id, plan_code, currency, period_start, period_end, usage, total, created_at,
                               kind, sequence, threshold)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     on conflict (customer_id, period_start, kind, sequence) do update
       set subscription_id = excluded.subscription_id, plan_code = excluded.plan_code, currency = excluded.currency,
           period_end = excluded.period_end, usage = excluded.usage, total = excluded.total, threshold = excluded.threshold
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
      draft.kind,
      draft.sequence,
      draft.threshold,
    ],
  );
  const saved = rows[0];
  if (!saved) return undefined;
  await db.query('delete from invoice_lines where invoice_id = $1', [saved.id]);
  let position = 0;
  for (const line of draft.lines) {
    await db.query(
      `insert into invoice_lines (invoice_id, position, type, meter, model, quantity, description, exact_amount, amount, breakdown,
                                  adjusts_invoice_id, adjusts_period_start, adjusts_period_end,
                                  coupon_application_id, tax_rate_id, tax_base, tax_inclusive,
                                  segment_plan_code, segment_start, segment_end)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
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
        line.discount?.applicationId ?? null,
        line.tax?.rateId ?? null,
        line.tax?.base ?? null,
        line.tax?.inclusive ?? null,
        line.segment?.planCode ?? null,
        line.segment?.start ?? null,
        line.segment?.end ?? null,
      ],
    );
  }
  return saved;
}

/**
 * Appends a line to a draft invoice and sets its new total: what finalization adds (prepaid credits)
 * in the finalizing transaction, before the status moves and the lines freeze.
 */
export async function appendLineAtFinalization(
  db: Queryable,
  invoiceId: string,
  line: Omit<InvoiceLine, 'position'>,
  total: string,
): Promise<void> {
  await db.query(
    `insert into invoice_lines (invoice_id, position, type, meter, model, quantity, description, exact_amount, amount, breakdown)
     select $1, coalesce(max(position), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9 from invoice_lines where invoice_id = $1`,
    [
      invoiceId,
      line.type,
      line.meter,
      line.model,
      line.quantity,
      line.description,
      line.exactAmount,
      line.amount,
      JSON.stringify(line.breakdown),
    ],
  );
  await db.query(`update invoices set total = $2 where id = $1 and status = 'draft'`, [invoiceId, total]);
}

/** What a state change of an invoice decides on. */
export type LockedInvoice = Pick<Invoice, 'id' | 'status' | 'total' | 'currency' | 'customerId' | 'planCode'>;

/** Locks the invoice row for a state change in the caller's transaction. */
export async function lockInvoice(db: Queryable, id: string): Promise<LockedInvoice | undefined> {
  const { rows } = await db.query<{
    id: string;
    status: InvoiceStatus;
    total: string;
    currency: CurrencyCode;
    customer_id: string;
    plan_code: string;
  }>('select id, status, total::text, currency, customer_id, plan_code from invoices where id = $1 for update', [id]);
  const r = rows[0];
  return r && { id: r.id, status: r.status, total: r.total, currency: r.currency, customerId: r.customer_id, planCode: r.plan_code };
}

const transitionColumn: Partial<Record<InvoiceStatus, string>> = {
  paid: 'paid_at',
  payment_failed: 'payment_failed_at',
};

/** Moves a locked invoice to `status` (the table's trigger refuses moves the lifecycle does not allow). */
export async function setInvoiceStatus(
  db: Queryable,
  id: string,
  status: Exclude<InvoiceStatus, 'draft' | 'finalized' | 'void'>,
  at: Date,
): Promise<void> {
  await db.query(`update invoices set status = $2, ${transitionColumn[status]} = $3 where id = $1`, [id, status, at]);
}

/**
 * Finalizes a locked draft with its number and a snapshot of the seller and of the customer as
 * they are now: what its document prints, whatever changes later.
 */
export async function issueInvoice(db: Queryable, id: string, issue: { number: string; seller: Seller; at: Date }): Promise<void> {
  const { seller } = issue;
  await db.query(
    `update invoices i set status = 'finalized', finalized_at = $2, number = $3, seller = $4,
            bill_to = (select jsonb_build_object('name', c.name, 'external_id', c.external_id) from customers c where c.id = i.customer_id)
      where i.id = $1`,
    [id, issue.at, issue.number, JSON.stringify({ name: seller.name, address: seller.address, tax_id: seller.taxId, email: seller.email })],
  );
}

/** Voids a locked invoice with its reason; the caller refuses what may not be voided. */
export async function setInvoiceVoid(db: Queryable, id: string, reason: string, at: Date): Promise<void> {
  await db.query(`update invoices set status = 'void', voided_at = $3, void_reason = $2 where id = $1`, [id, reason, at]);
}
