import { isCurrency, minorUnits, type CurrencyCode } from './currencies';
import type { CouponToApply } from './discounts';
import { interimBilledLine, interimUsageLines, totalOf, type InterimInvoiceBilled } from './interim-billing';
import { lateUsageAdjustments, type BilledLine } from './invoice-adjustments';
import { afterPricing } from './invoice-pipeline';
import { Decimal, ZERO, formatExact, formatMoney, fromMinorUnits, type RoundingMode } from './money';
import { billedPeriodContaining, nextBilledPeriod } from './billing-schedule';
import type { Period } from './periods';
import type { BillingInterval } from './periods-schema';
import type { Plan } from './plan';
import { pricePlan } from './pricing/price-plan';
import type { TaxRateToApply } from './taxes';
import type { SegmentLine } from './segment-pricing';

/*
 * Reconciliation compares what was invoiced and collected with what should have been: usage
 * recomputed from the raw events, repriced on the invoice's own (immutable) plan, and the payment
 * provider's record of charges. Pure: the caller loads everything and stores the differences.
 *
 * Money differences are measured against a ledger: what the invoice billed, plus adjustment
 * lines later invoices billed for it, plus late usage the next invoice will still adjust, minus
 * credit notes already issued. So a difference is corrected once, and a later run sees it settled.
 */

export const findingKinds = [
  'usage_mismatch',
  'amount_mismatch',
  'missing_invoice',
  'charge_missing_at_provider',
  'charge_unrecorded',
  'double_charge',
  'charged_void_invoice',
  'discount_mismatch',
  'tax_mismatch',
  // The prepaid-credit ledger (./credit-reconciliation.ts).
  'credit_balance_mismatch',
  'credit_drawdown_mismatch',
  'credit_drawdown_on_void_invoice',
] as const;
export type FindingKind = (typeof findingKinds)[number];

/** A difference as found, before it is stored as a finding. */
export interface Discrepancy {
  kind: FindingKind;
  /** The meter of a usage mismatch; null otherwise. */
  subject: string | null;
  description: string;
  expected: Record<string, unknown>;
  actual: Record<string, unknown>;
  /**
   * What a credit note settles it with, in the invoice's currency: positive is owed back to the
   * customer, negative is owed by them. Null when no credit note can settle it.
   */
  correction: string | null;
  /** Credit notes issued earlier already settle it exactly: it is reported as corrected. */
  settled: boolean;
}

/** A discrepancy with what identifies it across runs. */
export interface FoundDiscrepancy extends Discrepancy {
  key: string;
  customerId: string;
  invoiceId: string | null;
  currency: string | null;
}

/** The key a finding keeps across runs: what was compared, on which invoice (or subscription period). */
export function findingKey(kind: FindingKind, ref: string, subject: string | null): string {
  return subject === null ? `${kind}:${ref}` : `${kind}:${ref}:${subject}`;
}

type LineKey = 'base_fee' | 'minimum_commitment_true_up' | 'interim_billed' | `meter:${string}`;

/** Lines compared one to one: usage by meter, the base fee, the interim deduction, the true-up (adjustments of it have no meter). */
const lineKey = (line: { type: string; meter: string | null }): LineKey =>
  line.meter !== null
    ? `meter:${line.meter}`
    : line.type === 'base_fee' || line.type === 'interim_billed'
      ? line.type
      : 'minimum_commitment_true_up';

function sumByKey(lines: readonly { type: string; meter: string | null; amount: string }[]): Map<LineKey, Decimal> {
  const sums = new Map<LineKey, Decimal>();
  for (const line of lines) sums.set(lineKey(line), (sums.get(lineKey(line)) ?? ZERO).plus(line.amount));
  return sums;
}

/**
 * An amount in the currency's minor digits. A stored amount with more digits than the currency has
 * (written past the invoice path) is shown exactly as it is: rounding it here would hide part of
 * the very difference being reported.
 */
const amountText = (amount: Decimal, currency: CurrencyCode) =>
  amount.decimalPlaces() > minorUnits(currency) ? formatExact(amount) : formatMoney(amount, currency);

const sum = (values: readonly string[]) => values.reduce((total, v) => total.plus(v), ZERO as Decimal);

export interface InvoiceToCompare {
  currency: CurrencyCode;
  /** A period invoice bills the full period; an interim one only the usage lines of [start, its cut). */
  kind: 'period' | 'interim';
  period: { start: string; end: string };
  /** Usage per meter as the invoice states it. */
  usage: Record<string, string>;
  total: string;
  /** The invoice's own lines; its adjustment lines for earlier invoices are not its period's. */
  lines: readonly BilledLine[];
}

export interface InvoiceComparison {
  invoice: InvoiceToCompare;
  /** The plan the invoice was priced on. */
  plan: Plan;
  /** Usage per meter recomputed from the raw events of the invoice's period; absent meters had none. */
  recomputed: Record<string, string>;
  /**
   * The period repriced by plan segment (src/domain/segment-pricing.ts), when plan changes split it
   * or a cancellation cut it short; otherwise the plan prices `recomputed` as a whole period.
   */
  repriced?: { lines: readonly SegmentLine[]; total: string };
  /** Adjustment lines later (non-void) invoices billed for this invoice's period. */
  laterAdjustments: readonly BilledLine[];
  /** Credit notes issued for this invoice's amount so far. */
  credited: string;
  /** The next invoice will still bill late usage of this period as adjustment lines (within the lookback). */
  adjustable: boolean;
  /**
   * The period's non-void interim invoices this invoice deducts (all of them for the period
   * invoice, the earlier ones for an interim invoice), as found in the invoices table.
   */
  interimBilled: readonly InterimInvoiceBilled[];
}

/** Usage and amounts of one finalized invoice against its period repriced from the raw events. */
export function compareInvoice(c: InvoiceComparison): Discrepancy[] {
  const { invoice, plan } = c;
  const currency = invoice.currency;
  const charged = new Set(plan.charges.map((charge) => charge.meter));
  const found: Discrepancy[] = [];

  const meters = [...new Set([...charged, ...plan.limits.map((l) => l.meter), ...Object.keys(invoice.usage)])].sort();
  for (const meter of meters) {
    const expected = new Decimal(c.recomputed[meter] ?? 0);
    const invoiced = new Decimal(invoice.usage[meter] ?? 0);
    const adjusted = sum(c.laterAdjustments.filter((l) => l.meter === meter).map((l) => l.quantity ?? '0'));
    const billed = invoiced.plus(adjusted);
    // Late usage of a charged meter that the next invoice still adjusts is the normal path, not a discrepancy.
    if (billed.eq(expected) || (c.adjustable && charged.has(meter))) continue;
    found.push({
      kind: 'usage_mismatch',
      subject: meter,
      description: `${meter}: ${formatExact(billed)} billed (${formatExact(invoiced)} on the invoice, ${formatExact(adjusted)} in later adjustments), ${formatExact(expected)} in the raw events`,
      expected: { quantity: formatExact(expected) },
      actual: { quantity: formatExact(billed), invoiced: formatExact(invoiced), adjusted: formatExact(adjusted) },
      correction: null,
      settled: false,
    });
  }

  const whole = () => pricePlan(plan, Object.fromEntries(Object.entries(c.recomputed).filter(([meter]) => charged.has(meter)))).lines;
  // Split or cut-short periods come repriced by segment (c.repriced); a period on one plan is priced here.
  const priced = c.repriced?.lines ?? whole();
  const repricedLines = invoice.kind === 'interim' ? interimUsageLines(priced) : priced;
  const deduction = interimBilledLine(currency, c.interimBilled);
  const expectedTotal = formatMoney(totalOf([...repricedLines, ...(deduction ? [deduction] : [])]), currency);
  const billedLines = [...invoice.lines, ...c.laterAdjustments];
  const pendingAdjustments = c.adjustable
    ? lateUsageAdjustments({ currency, period: invoice.period, billed: billedLines, repriced: repricedLines })
    : [];
  const pending = sum(pendingAdjustments.map((a) => a.amount));
  const adjusted = sum(c.laterAdjustments.map((l) => l.amount));
  const billedTotal = new Decimal(invoice.total).plus(adjusted);
  const credited = new Decimal(c.credited);
  const difference = billedTotal.plus(pending).minus(expectedTotal);
  const outstanding = difference.minus(credited);

  const expectedLines = sumByKey([...repricedLines, ...(deduction ? [deduction] : [])]);
  const actualLines = sumByKey(billedLines);
  const willAdjust = new Set(pendingAdjustments.map((a) => lineKey({ type: 'adjustment', meter: a.meter })));
  const unexplained = [...new Set([...expectedLines.keys(), ...actualLines.keys()])]
    .filter((key) => !(expectedLines.get(key) ?? ZERO).eq(actualLines.get(key) ?? ZERO) && !willAdjust.has(key))
    .sort();
  if (outstanding.isZero() && difference.isZero() && unexplained.length === 0) return found;

  const money = (d: Decimal) => amountText(d, currency);
  const lineAmounts = (lines: Map<LineKey, Decimal>) =>
    Object.fromEntries([...lines].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, money(v)]));
  const owed = (d: Decimal) =>
    d.isPositive() ? `${money(d)} ${currency} owed back to the customer` : `${money(d.neg())} ${currency} owed by the customer`;
  const state = !outstanding.isZero()
    ? owed(outstanding)
    : !difference.isZero()
      ? `settled by credit notes of ${money(credited)} ${currency}`
      : `lines differ (${unexplained.join(', ')}) though the total matches`;
  found.push({
    kind: 'amount_mismatch',
    subject: null,
    description:
      `Billed ${money(billedTotal)} ${currency}${adjusted.isZero() ? '' : ` (invoice ${money(new Decimal(invoice.total))} + later adjustments ${money(adjusted)})`}` +
      `${pending.isZero() ? '' : `, ${money(pending)} still to be adjusted on the next invoice`}; repriced from the raw events ${expectedTotal} ${currency}: ${state}`,
    expected: { total: expectedTotal, lines: lineAmounts(expectedLines) },
    actual: {
      total: money(billedTotal),
      invoice_total: invoice.total,
      adjusted: money(adjusted),
      pending_adjustment: money(pending),
      credited: money(credited),
      lines: lineAmounts(actualLines),
    },
    correction: outstanding.isZero() ? null : money(outstanding),
    settled: outstanding.isZero() && !difference.isZero(),
  });
  return found;
}

/** An invoice line as the discount and tax steps see it (src/domain/invoice-pipeline.ts). */
export interface StoredPipelineLine {
  type: string;
  meter: string | null;
  amount: string;
  /** Discount lines: the coupon application. */
  applicationId: string | null;
  /** Tax lines: the rate. */
  taxRateId: string | null;
}

export interface DiscountTaxComparison {
  currency: CurrencyCode;
  rounding: RoundingMode;
  /** All of the invoice's own lines, as stored. */
  lines: readonly StoredPipelineLine[];
  /** The coupon applications the invoice's discount lines name, oldest first. */
  coupons: readonly CouponToApply[];
  /** The customer's tax rates in force when the invoice was finalized. */
  taxRates: readonly TaxRateToApply[];
}

/**
 * The invoice's discount and tax lines against the same steps run again on its stored charge
 * lines, with the coupons it redeemed and the rates in force at finalization. Charges are taken
 * as stored on purpose: usage and price differences are `usage_mismatch` / `amount_mismatch`
 * already; this checks that discounts and taxes were computed and kept right for what was billed.
 * Reported for a fix at the source (no credit note settles it automatically). Also returns what
 * the repriced discounts and exclusive taxes add to the total: the invoice's total less that is
 * what it billed for its charges (compared by `compareInvoice`), so an altered total is still
 * caught there while an altered discount or tax line is reported here only, once.
 */
export function compareDiscountsAndTaxes(c: DiscountTaxComparison): { found: Discrepancy[]; addedToTotal: string } {
  const charges = c.lines.filter((l) => l.type !== 'discount' && l.type !== 'tax');
  const repriced = afterPricing({ currency: c.currency, rounding: c.rounding, lines: charges, coupons: c.coupons, taxRates: c.taxRates });
  const codeOfCoupon = new Map(c.coupons.map((k) => [k.applicationId, k.coupon.code]));
  const codeOfRate = new Map(c.taxRates.map((r) => [r.id, r.code]));
  const found: Discrepancy[] = [];
  const compare = (kind: 'discount_mismatch' | 'tax_mismatch', expected: Map<string, Decimal>, actual: Map<string, Decimal>) => {
    for (const key of [...new Set([...expected.keys(), ...actual.keys()])].sort()) {
      const want = expected.get(key) ?? ZERO;
      const got = actual.get(key) ?? ZERO;
      if (want.eq(got)) continue;
      const money = (d: Decimal) => amountText(d, c.currency);
      found.push({
        kind,
        subject: key,
        description: `${kind === 'discount_mismatch' ? 'Discount' : 'Tax'} ${key}: ${money(got)} ${c.currency} on the invoice, ${money(want)} ${c.currency} repriced from its charges`,
        expected: { amount: money(want) },
        actual: { amount: money(got) },
        correction: null,
        settled: false,
      });
    }
  };
  const sums = (entries: [string, string][]) => {
    const map = new Map<string, Decimal>();
    for (const [key, amount] of entries) map.set(key, (map.get(key) ?? ZERO).plus(amount));
    return map;
  };
  const discountKey = (applicationId: string, meter: string | null) =>
    `${codeOfCoupon.get(applicationId) ?? applicationId}/${meter ?? 'base fee and minimum commitment'}`;
  compare(
    'discount_mismatch',
    sums(repriced.discounts.map((d) => [discountKey(d.applicationId, d.meter), d.amount])),
    sums(c.lines.filter((l) => l.type === 'discount').map((l) => [discountKey(l.applicationId!, l.meter), l.amount])),
  );
  compare(
    'tax_mismatch',
    sums(repriced.taxes.map((t) => [codeOfRate.get(t.taxRateId)!, t.amount])),
    sums(c.lines.filter((l) => l.type === 'tax').map((l) => [codeOfRate.get(l.taxRateId!) ?? l.taxRateId!, l.amount])),
  );
  const added = [...repriced.discounts, ...repriced.taxes.filter((t) => !t.inclusive)].reduce((total, l) => total.plus(l.amount), ZERO);
  return { found, addedToTotal: formatExact(added) };
}

/** A charge as the payment provider records it. */
export interface ProviderChargeSeen {
  id: string;
  status: 'succeeded' | 'declined';
  /** Integer string of the currency's minor units. */
  amountMinor: string;
  currency: string;
}

export interface ChargeComparison {
  invoice: { status: string; currency: CurrencyCode };
  /** The provider charge id of the charge we recorded as succeeded, if any. */
  recorded: string | null;
  /** The provider's charges for the invoice, oldest first. */
  provider: readonly ProviderChargeSeen[];
  /** Credit notes issued so far for this invoice: for its collection (double charges), and in all. */
  credited: { collection: string; all: string };
}

function major(charge: ProviderChargeSeen, fallback: CurrencyCode): Decimal {
  const currency = isCurrency(charge.currency) ? charge.currency : fallback;
  return fromMinorUnits(charge.amountMinor, currency);
}

/** Our record of an invoice's collection against the provider's. */
export function compareCharges(c: ChargeComparison): Discrepancy[] {
  const currency = c.invoice.currency;
  const money = (d: Decimal) => amountText(d, currency);
  const succeeded = c.provider.filter((p) => p.status === 'succeeded');
  const seen = (charges: readonly ProviderChargeSeen[]) =>
    charges.map((p) => ({ id: p.id, status: p.status, amount: money(major(p, currency)) }));
  const found: Discrepancy[] = [];

  if (c.recorded !== null && !succeeded.some((p) => p.id === c.recorded)) {
    found.push({
      kind: 'charge_missing_at_provider',
      subject: null,
      description: `We recorded charge ${c.recorded} as succeeded; the provider has no such successful charge for this invoice`,
      expected: { provider_charge_id: c.recorded, status: 'succeeded' },
      actual: { provider_charges: seen(c.provider) },
      correction: null,
      settled: false,
    });
  }

  if (c.invoice.status === 'void') {
    if (succeeded.length === 0) return found;
    // Nothing is owed on a void invoice: everything collected goes back, net of credit notes already issued.
    const collected = sum(succeeded.map((p) => major(p, currency).toFixed()));
    const outstanding = collected.minus(c.credited.all);
    found.push({
      kind: 'charged_void_invoice',
      subject: null,
      description:
        `The invoice is void yet ${money(collected)} ${currency} was collected (${succeeded.map((p) => p.id).join(', ')})` +
        (outstanding.isZero() ? '; settled by credit notes' : `: ${money(outstanding)} ${currency} owed back to the customer`),
      expected: { collected: money(ZERO) },
      actual: { collected: money(collected), provider_charges: seen(succeeded), credited: money(new Decimal(c.credited.all)) },
      correction: outstanding.isZero() ? null : money(outstanding),
      settled: outstanding.isZero(),
    });
    return found;
  }

  const kept = succeeded.find((p) => p.id === c.recorded) ?? succeeded[0];
  const extra = succeeded.filter((p) => p !== kept);
  if (extra.length > 0) {
    const overcollected = sum(extra.map((p) => major(p, currency).toFixed()));
    const outstanding = overcollected.minus(c.credited.collection);
    found.push({
      kind: 'double_charge',
      subject: null,
      description:
        `${succeeded.length} successful charges for one invoice (${succeeded.map((p) => p.id).join(', ')})` +
        (outstanding.isZero() ? '; settled by credit notes' : `: ${money(outstanding)} ${currency} owed back to the customer`),
      expected: { successful_charges: 1 },
      actual: {
        successful_charges: succeeded.length,
        provider_charges: seen(succeeded),
        credited: money(new Decimal(c.credited.collection)),
      },
      correction: outstanding.isZero() ? null : money(outstanding),
      settled: outstanding.isZero(),
    });
  }
  if (kept && c.recorded === null) {
    found.push({
      kind: 'charge_unrecorded',
      subject: null,
      description: `The provider collected ${money(major(kept, currency))} ${currency} (${kept.id}) for this invoice; we recorded no successful charge`,
      expected: { recorded_charge: kept.id },
      actual: { recorded_charge: null },
      correction: null,
      settled: false,
    });
  }
  return found;
}

export interface SubscriptionSpan {
  /** The subscription start: no period before it is billed. */
  anchor: Date;
  /** Periods are derived from it (src/domain/billing-schedule.ts); absent: from the start. */
  billingAnchor?: Date;
  interval: BillingInterval;
  /** When billing ended (cancellation): the final period is cut short there. */
  endsAt: Date | null;
}

/**
 * The periods of a subscription that must have an invoice by `asOf`: those starting in the scope
 * and ended by then (the last one cut short at the cancellation).
 */
export function invoicedPeriods(subscription: SubscriptionSpan, scope: Period, asOf: Date): Period[] {
  const { anchor, interval, endsAt } = subscription;
  const schedule = { start: anchor, billingAnchor: subscription.billingAnchor ?? anchor, interval };
  const stop = Math.min(scope.end.getTime(), endsAt?.getTime() ?? Infinity, asOf.getTime());
  const from = new Date(Math.max(scope.start.getTime(), anchor.getTime()));
  if (from.getTime() >= stop) return [];
  let period = billedPeriodContaining(schedule, from);
  if (period.start < from) period = nextBilledPeriod(schedule, period);
  const periods: Period[] = [];
  for (; period.start.getTime() < stop; period = nextBilledPeriod(schedule, period)) {
    const end = endsAt && endsAt < period.end ? endsAt : period.end;
    if (end > asOf) break;
    periods.push({ start: period.start, end });
  }
  return periods;
}

export const runStatuses = ['running', 'awaiting_decision', 'completed', 'canceled'] as const;
export type RunStatus = (typeof runStatuses)[number];

/** One pending finding, as the workflow shows it in the Temporal UI. */
export interface FindingBrief {
  id: number;
  kind: FindingKind;
  /** External id of the customer. */
  customer: string;
  invoiceId: string | null;
  description: string;
  correction: string | null;
  currency: string | null;
}

/** Where a reconciliation run stands: what its activities return and its `report` query answers. */
export interface ReconciliationSummary {
  runId: string;
  status: RunStatus;
  period: { start: string; end: string };
  /** External id of the one customer reconciled, or null for all. */
  customer: string | null;
  invoicesChecked: number;
  findings: { total: number; pending: number; corrected: number; dismissed: number };
  pendingByKind: Partial<Record<FindingKind, number>>;
  /** What `approve` issues: one credit note per pending finding with a correction, totalled per currency. */
  corrections: { count: number; totals: Record<string, string> };
  /** The first pending findings, for the Temporal UI; the API's report has them all. */
  pending: FindingBrief[];
}
