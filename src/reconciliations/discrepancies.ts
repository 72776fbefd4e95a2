import type { Clock } from '../clock';
import type { Queryable } from '../db/transaction';
import type { CouponToApply } from '../domain/discounts';
import type { BilledLine } from '../domain/invoice-adjustments';
import { creditsOnInvoice } from '../domain/credit-drawdown';
import { Decimal, ZERO, formatMoney } from '../domain/money';
import { periodContaining } from '../domain/periods';
import type { BillingInterval } from '../domain/periods-schema';
import type { Plan } from '../domain/plan';
import { planSegments } from '../domain/plan-segments';
import {
  compareCharges,
  compareDiscountsAndTaxes,
  compareInvoice,
  findingKey,
  invoicedPeriods,
  type Discrepancy,
  type FindingKind,
  type FoundDiscrepancy,
  type InvoiceComparison,
} from '../domain/reconciliation';
import { priceSegments } from '../domain/segment-pricing';
import type { PaymentProvider, ProviderCharge } from '../provider/payment-provider';
import { couponsOfInvoices } from '../coupons/store';
import { isChargeLine } from '../invoices/after-pricing';
import { interimInvoicesDeducted, listInvoices, type Invoice } from '../invoices/store';
import { inForceAt, taxRatesOfCustomers, type StoredTaxRate } from '../taxes/store';
import { getPlan } from '../plans/store';
import { archivedInvoiceIds } from '../retention/store';
import { creditLedgerDiscrepancies } from './credit-ledger';
import { planTimelineOf } from '../subscriptions/store';

/*
 * The I/O half of reconciliation: loads a scope's invoices, recomputes their usage from the raw
 * events, reads the payment provider's record, and hands everything to the pure comparison in
 * src/domain/reconciliation.ts. Usage is recomputed here with its own SQL, deliberately apart
 * from the invoice path (src/metering/usage-query.ts): a bug there must not hide itself here.
 */

export interface ScopeToReconcile {
  /** Invoices and subscription periods starting in [start, end). */
  start: Date;
  end: Date;
  customerId: string | null;
  /** Periods ended by then must have an invoice. */
  asOf: Date;
}

export interface ReconciliationDeps {
  db: Queryable;
  provider: PaymentProvider;
  clock: Clock;
  /** As the invoice path is configured: how many earlier invoices late usage may still adjust. */
  lookbackInvoices: number;
  /** Told as the provider is read, invoice by invoice: a long run reports how far it is. */
  progress?: (checked: number, of: number) => void;
}

const PAGE = 500;
const PROVIDER_CONCURRENCY = 8;

async function invoicesInScope(db: Queryable, scope: ScopeToReconcile): Promise<Invoice[]> {
  const filter = { ...(scope.customerId ? { customerId: scope.customerId } : {}), periodFrom: scope.start, periodTo: scope.end };
  const all: Invoice[] = [];
  let after: { periodStart: Date; id: string } | undefined;
  for (;;) {
    const page = await listInvoices(db, filter, PAGE, after);
    all.push(...page.filter((i) => i.status !== 'draft'));
    const last = page.at(-1);
    if (page.length < PAGE || !last) return all;
    after = { periodStart: last.periodStart, id: last.id };
  }
}

/** A meter's quantity over the joined events `e`, by its aggregation (this module's own SQL). */
const aggregatedQuantity = `(case m.aggregation
               when 'count' then count(*)::numeric
               when 'sum' then sum(e.value)
               when 'max' then max(e.value)
               when 'unique_count' then count(distinct e.properties ->> m.value_property)::numeric
               when 'latest' then (array_agg(e.value order by e.event_time desc, e.event_id desc))[1]
             end)::text`;

/**
 * Usage per invoice and meter over each invoice's own [period_start, period_end), in one grouped
 * aggregate over usage_events. Each aggregation as the meter defines it; NUMERIC throughout.
 */
async function recomputeUsage(db: Queryable, invoiceIds: string[]): Promise<Map<string, Record<string, string>>> {
  const { rows } = await db.query<{ invoice_id: string; meter: string; quantity: string | null }>(
    `select i.id as invoice_id, m.code as meter, ${aggregatedQuantity} as quantity
       from invoices i
       join customers c on c.id = i.customer_id
       join usage_events e on e.customer_short_id = c.short_id and e.event_time >= i.period_start and e.event_time < i.period_end
       join meters m on m.short_id = e.meter_short_id
      where i.id = any($1)
      group by i.id, m.code, m.aggregation, m.value_property`,
    [invoiceIds],
  );
  const usage = new Map<string, Record<string, string>>();
  for (const r of rows) {
    const perMeter = usage.get(r.invoice_id) ?? {};
    perMeter[r.meter] = r.quantity ?? '0';
    usage.set(r.invoice_id, perMeter);
  }
  return usage;
}

/** The customer's usage per meter over [start, end), for one plan segment. */
async function recomputeSpan(db: Queryable, customerId: string, start: number, end: number): Promise<Record<string, string>> {
  const { rows } = await db.query<{ meter: string; quantity: string | null }>(
    `select m.code as meter, ${aggregatedQuantity} as quantity
       from usage_events e join meters m on m.short_id = e.meter_short_id
      where e.customer_short_id = (select short_id from customers where id = $1) and e.event_time >= $2 and e.event_time < $3
      group by m.code, m.aggregation, m.value_property`,
    [customerId, new Date(start), new Date(end)],
  );
  return Object.fromEntries(rows.map((r) => [r.meter, r.quantity ?? '0']));
}

/**
 * What an invoice billed for its own period: its stored total (which a tampered row would show)
 * less the adjustment lines it carries for earlier periods, compared on those periods.
 */
const ownTotal = (invoice: Invoice) =>
  formatMoney(
    invoice.lines.filter((l) => l.type === 'adjustment').reduce((total, l) => total.minus(l.amount), new Decimal(invoice.total)),
    invoice.currency,
  );

/**
 * An invoice split by plan changes, or cut short by a cancellation, repriced the way such a period
 * is billed (plan segments from the subscription's recorded changes, fixed amounts prorated),
 * with usage recomputed here; undefined for a whole period on one plan, which the comparison
 * prices itself.
 */
async function repriceSegments(
  db: Queryable,
  invoice: Invoice,
  recomputed: Record<string, string>,
): Promise<InvoiceComparison['repriced']> {
  const found = await planTimelineOf(db, invoice.subscriptionId);
  const [start, end] = [invoice.periodStart.getTime(), invoice.periodEnd.getTime()];
  const segments = found ? planSegments(found.timeline, start, end) : [];
  const plans = new Map<string, Plan>();
  for (const { planCode } of segments) {
    const plan = plans.get(planCode) ?? (await getPlan(db, planCode));
    if (plan) plans.set(planCode, plan);
  }
  const first = plans.get(segments[0]?.planCode ?? '');
  if (!found || !first || plans.size !== new Set(segments.map((x) => x.planCode)).size) return undefined;
  const full = periodContaining(found.billingAnchor, first.interval, invoice.periodStart);
  if (segments.length === 1 && full.start.getTime() === start && full.end.getTime() === end) return undefined;
  const { rows } = await db.query<{ code: string }>(`select code from meters where aggregation in ('count', 'sum')`);
  const priced = [];
  for (const segment of segments) {
    const plan = plans.get(segment.planCode)!;
    const usage = segments.length === 1 ? recomputed : await recomputeSpan(db, invoice.customerId, segment.start, segment.end);
    const charged = new Set(plan.charges.map((c) => c.meter));
    priced.push({ segment, plan, usage: Object.fromEntries(Object.entries(usage).filter(([m]) => charged.has(m))) });
  }
  const { lines, total } = priceSegments({
    period: { start: full.start.getTime(), end: full.end.getTime() },
    segments: priced,
    cumulative: new Set(rows.map((r) => r.code)),
  });
  return { lines, total: formatMoney(total, invoice.currency) };
}

/** Adjustment lines that later, non-void invoices billed for each invoice's period. */
async function laterAdjustments(db: Queryable, invoiceIds: string[]): Promise<Map<string, BilledLine[]>> {
  const { rows } = await db.query<{ adjusts_invoice_id: string; meter: string | null; quantity: string | null; amount: string }>(
    `select l.adjusts_invoice_id, l.meter, l.quantity::text, l.amount::text
       from invoice_lines l join invoices i on i.id = l.invoice_id
      where l.adjusts_invoice_id = any($1) and i.status <> 'void'`,
    [invoiceIds],
  );
  const lines = new Map<string, BilledLine[]>();
  for (const r of rows) {
    lines.set(r.adjusts_invoice_id, [
      ...(lines.get(r.adjusts_invoice_id) ?? []),
      { type: 'adjustment', meter: r.meter, quantity: r.quantity, amount: r.amount },
    ]);
  }
  return lines;
}

type Credits = Map<string, Map<FindingKind, string>>;

/** Credit notes issued so far per invoice and per kind of finding they corrected. */
async function credited(db: Queryable, invoiceIds: string[]): Promise<Credits> {
  const { rows } = await db.query<{ invoice_id: string; kind: FindingKind; amount: string }>(
    `select c.invoice_id, f.kind, sum(c.amount)::text as amount
       from credit_notes c join reconciliation_findings f on f.id = c.finding_id
      where c.invoice_id = any($1) group by c.invoice_id, f.kind`,
    [invoiceIds],
  );
  const sums: Credits = new Map();
  for (const r of rows) sums.set(r.invoice_id, (sums.get(r.invoice_id) ?? new Map()).set(r.kind, r.amount));
  return sums;
}

/**
 * Invoices whose late usage the next invoice will still bill as adjustment lines: the customer is
 * subscribed (a next invoice will come), fewer than `lookback` finalized invoices follow it, and
 * no credit note corrected it (such an invoice is settled by reconciliation alone) — exactly how
 * the invoice path (`adjustableInvoices`) picks the invoices it adjusts.
 */
async function adjustable(db: Queryable, invoiceIds: string[], lookback: number): Promise<Set<string>> {
  if (lookback === 0) return new Set();
  const { rows } = await db.query<{ id: string }>(
    `select i.id from invoices i
      where i.id = any($1)
        and exists (select 1 from subscriptions s where s.customer_id = i.customer_id and s.status = 'active')
        and not exists (select 1 from credit_notes c where c.invoice_id = i.id)
        and (select count(*) from invoices later
              where later.customer_id = i.customer_id and later.period_start > i.period_start and later.kind = 'period'
                and later.status in ('finalized', 'paid', 'payment_failed')) < $2`,
    [invoiceIds, lookback],
  );
  return new Set(rows.map((r) => r.id));
}

async function plansOf(db: Queryable, invoices: Invoice[]): Promise<Map<string, Plan>> {
  const plans = new Map<string, Plan>();
  for (const code of new Set(invoices.map((i) => i.planCode))) {
    const plan = await getPlan(db, code);
    // invoices.plan_code references plans, whose rows are never deleted.
    if (plan) plans.set(code, plan);
  }
  return plans;
}

function invoiceDiscrepancies(invoice: Invoice, found: Discrepancy[]): FoundDiscrepancy[] {
  return found.map((d) => ({
    ...d,
    key: findingKey(d.kind, invoice.id, d.subject),
    customerId: invoice.customerId,
    invoiceId: invoice.id,
    currency: d.correction === null ? null : invoice.currency,
  }));
}

/**
 * Usage and amounts of every finalized (paid, unpaid) invoice in scope. Invoices whose period's
 * raw events were archived (archived_periods, src/retention/) cannot be recomputed and are left
 * out here: "no events" would read as a usage mismatch. Their charges are still compared.
 */
async function compareInvoices(deps: ReconciliationDeps, invoices: Invoice[], credits: Credits): Promise<FoundDiscrepancy[]> {
  const notVoid = invoices.filter((i) => i.status !== 'void');
  const archived = await archivedInvoiceIds(
    deps.db,
    notVoid.map((i) => i.id),
  );
  const billed = notVoid.filter((i) => !archived.has(i.id));
  const ids = billed.map((i) => i.id);
  const [plans, usage, adjustments, stillAdjustable, deducted] = await Promise.all([
    plansOf(deps.db, billed),
    recomputeUsage(deps.db, ids),
    laterAdjustments(deps.db, ids),
    adjustable(deps.db, ids, deps.lookbackInvoices),
    interimInvoicesDeducted(deps.db, ids),
  ]);
  const [coupons, taxRates] = await Promise.all([
    couponsOfInvoices(deps.db, ids),
    taxRatesOfCustomers(deps.db, [...new Set(billed.map((i) => i.customerId))]),
  ]);
  const discountsAndTaxes = billed.map((invoice) => repriceDiscountsAndTaxes(invoice, plans, coupons, taxRates));
  const segmented = new Map<string, InvoiceComparison['repriced']>();
  for (const invoice of billed) segmented.set(invoice.id, await repriceSegments(deps.db, invoice, usage.get(invoice.id) ?? {}));
  return billed.flatMap((invoice, i) =>
    invoiceDiscrepancies(invoice, [
      ...compareInvoice({
        invoice: {
          currency: invoice.currency,
          kind: invoice.kind,
          period: { start: invoice.periodStart.toISOString(), end: invoice.periodEnd.toISOString() },
          usage: invoice.usage,
          // What it billed for its own period's charges: discounts and taxes are compared on their own
          // below, and credits paid part of it (the repriced total is compared with the total before credits).
          total: new Decimal(ownTotal(invoice)).minus(discountsAndTaxes[i]!.addedToTotal).plus(creditsOnInvoice(invoice.lines)).toFixed(),
          lines: invoice.lines.filter(isChargeLine).filter((l) => l.type !== 'adjustment'),
        },
        plan: plans.get(invoice.planCode)!,
        recomputed: usage.get(invoice.id) ?? {},
        ...(segmented.get(invoice.id) ? { repriced: segmented.get(invoice.id)! } : {}),
        laterAdjustments: adjustments.get(invoice.id) ?? [],
        credited: credits.get(invoice.id)?.get('amount_mismatch') ?? '0',
        // Usage of an interim invoice's span stored after it was cut is billed by the period invoice, which prices the whole period.
        adjustable: invoice.kind === 'interim' || stillAdjustable.has(invoice.id),
        interimBilled: deducted.get(invoice.id) ?? [],
      }),
      ...discountsAndTaxes[i]!.found,
    ]),
  );
}

/** The invoice's discount and tax lines against the same steps run again (src/domain/reconciliation.ts). */
function repriceDiscountsAndTaxes(
  invoice: Invoice,
  plans: Map<string, Plan>,
  coupons: Map<string, CouponToApply[]>,
  taxRates: StoredTaxRate[],
): ReturnType<typeof compareDiscountsAndTaxes> {
  // The rates of the customer in force when the invoice was finalized.
  const at = invoice.finalizedAt ?? invoice.createdAt;
  return compareDiscountsAndTaxes({
    currency: invoice.currency,
    rounding: plans.get(invoice.planCode)!.rounding ?? 'half_up',
    lines: invoice.lines.map((l) => ({
      type: l.type,
      meter: l.meter,
      amount: l.amount,
      applicationId: l.discount?.applicationId ?? null,
      taxRateId: l.tax?.rateId ?? null,
    })),
    coupons: coupons.get(invoice.id) ?? [],
    taxRates: taxRates.filter((r) => r.customerId === invoice.customerId && inForceAt(r, at)),
  });
}

async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * Every invoice's charges, ours against the provider's. The provider is read first and our record
 * after it: a charge whose record changed since, or whose attempt is still in flight, is mid-way
 * through collection and is left to a later run instead of being reported half-done.
 */
async function compareCollections(deps: ReconciliationDeps, invoices: Invoice[], credits: Credits): Promise<FoundDiscrepancy[]> {
  const listedAt = deps.clock.now();
  let checked = 0;
  const provider = await mapLimited(invoices, PROVIDER_CONCURRENCY, async (invoice) => {
    const charges: ProviderCharge[] = await deps.provider.listCharges({ invoiceId: invoice.id });
    deps.progress?.(++checked, invoices.length);
    return charges;
  });
  const { rows: ours } = await deps.db.query<{
    invoice_id: string;
    status: string;
    provider_charge_id: string | null;
    updated_at: Date;
    in_flight: boolean;
  }>(
    `select c.invoice_id, c.status, c.provider_charge_id, c.updated_at,
            exists (select 1 from charge_attempts a where a.invoice_id = c.invoice_id and a.status = 'pending') as in_flight
       from charges c where c.invoice_id = any($1)`,
    [invoices.map((i) => i.id)],
  );
  const byInvoice = new Map(ours.map((r) => [r.invoice_id, r]));
  return invoices.flatMap((invoice, i) => {
    const charge = byInvoice.get(invoice.id);
    if (charge && (charge.in_flight || charge.updated_at >= listedAt)) return [];
    const credit = credits.get(invoice.id);
    const all = [...(credit?.values() ?? [])].reduce((total, amount) => total.plus(amount), ZERO);
    return invoiceDiscrepancies(
      invoice,
      compareCharges({
        invoice: { status: invoice.status, currency: invoice.currency },
        recorded: charge?.status === 'succeeded' ? charge.provider_charge_id : null,
        provider: provider[i]!,
        credited: { collection: credit?.get('double_charge') ?? '0', all: all.toFixed() },
      }),
    );
  });
}

/**
 * Subscription periods in scope, ended by `asOf`, with events but no invoice (in any status).
 * Events are looked for in one query over all candidate periods.
 */
async function missingInvoices(db: Queryable, scope: ScopeToReconcile): Promise<FoundDiscrepancy[]> {
  const { rows: subscriptions } = await db.query<{
    id: string;
    customer_id: string;
    anchor: Date;
    billing_anchor: Date;
    cancel_at: Date | null;
    billing_interval: BillingInterval;
  }>(
    `select s.id, s.customer_id, s.anchor, coalesce(s.billing_anchor, s.anchor) as billing_anchor, s.cancel_at, p.billing_interval
       from subscriptions s join plans p on p.code = s.plan_code
      where ($1::uuid is null or s.customer_id = $1) and s.anchor < $3 and (s.cancel_at is null or s.cancel_at > $2)`,
    [scope.customerId, scope.start, scope.end],
  );
  const candidates = subscriptions.flatMap((s) =>
    invoicedPeriods(
      { anchor: s.anchor, billingAnchor: s.billing_anchor, interval: s.billing_interval, endsAt: s.cancel_at },
      scope,
      scope.asOf,
    ).map((period) => ({
      subscription: s,
      period,
    })),
  );
  if (candidates.length === 0) return [];
  const { rows } = await db.query<{ ord: string; events: string }>(
    `select c.ord, e.events::text
       from unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) with ordinality as c(customer_id, period_start, period_end, ord)
       join customers cu on cu.id = c.customer_id
       cross join lateral (select count(*) as events from usage_events e
                            where e.customer_short_id = cu.short_id and e.event_time >= c.period_start and e.event_time < c.period_end) e
      where e.events > 0 and not exists (select 1 from invoices i where i.customer_id = c.customer_id and i.period_start = c.period_start
                                                                  and i.kind = 'period')`,
    [candidates.map((c) => c.subscription.customer_id), candidates.map((c) => c.period.start), candidates.map((c) => c.period.end)],
  );
  return rows.map((r) => {
    const { subscription, period } = candidates[Number(r.ord) - 1]!;
    const start = period.start.toISOString();
    const end = period.end.toISOString();
    return {
      kind: 'missing_invoice',
      subject: null,
      description: `No invoice for [${start}, ${end}) of subscription ${subscription.id}, which has ${r.events} event(s) in it`,
      expected: { subscription_id: subscription.id, period: { start, end } },
      actual: { invoice: null, events: Number(r.events) },
      correction: null,
      settled: false,
      key: findingKey('missing_invoice', `${subscription.id}@${start}`, null),
      customerId: subscription.customer_id,
      invoiceId: null,
      currency: null,
    };
  });
}

/** Every discrepancy in scope, in a stable order: invoices by period, then missing invoices. */
export async function findDiscrepancies(
  deps: ReconciliationDeps,
  scope: ScopeToReconcile,
): Promise<{ invoicesChecked: number; found: FoundDiscrepancy[] }> {
  const invoices = (await invoicesInScope(deps.db, scope)).reverse();
  const credits = await credited(
    deps.db,
    invoices.map((i) => i.id),
  );
  const [amounts, collections, missing, ledger] = await Promise.all([
    compareInvoices(deps, invoices, credits),
    compareCollections(deps, invoices, credits),
    missingInvoices(deps.db, scope),
    creditLedgerDiscrepancies(deps.db, scope.customerId),
  ]);
  const order = new Map(invoices.map((invoice, i) => [invoice.id, i]));
  const rank = (d: FoundDiscrepancy) => (d.invoiceId === null || !order.has(d.invoiceId) ? invoices.length : order.get(d.invoiceId)!);
  return {
    invoicesChecked: invoices.length,
    found: [...amounts, ...collections, ...missing, ...ledger].sort((a, b) => rank(a) - rank(b)),
  };
}
