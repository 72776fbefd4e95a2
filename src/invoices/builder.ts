import type { Queryable } from '../db/transaction';
import { isNotCredit } from '../domain/credit-drawdown';
import { lateUsageAdjustments } from '../domain/invoice-adjustments';
import { periodContaining } from '../domain/periods';
import { planAt, planSegments } from '../domain/plan-segments';
import type { Plan } from '../domain/plan';
import type { PriceLine } from '../domain/pricing/schema';
import { priceSegments, type SegmentLine, type SegmentRef } from '../domain/segment-pricing';
import { getMeter } from '../meters/store';
import { measurePlanUsage, metersOfPlans, UnknownPlanMeterError } from '../metering/plan-usage';
import { planTimelineOf } from '../subscriptions/store';
import { discountAndTaxLines, isChargeLine } from './after-pricing';
import { adjustableInvoices, adjustmentsFor, type DraftContent, type Invoice } from './store';
import { getPlan } from '../plans/store';
import { interimDeductionLines } from './interim-deduction';

/** A plan, meter or period the stored data cannot support: retrying cannot fix it. */
export class InvoiceInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvoiceInputError';
  }
}

export interface PeriodToInvoice {
  subscriptionId: string;
  customerId: string;
  /** The plan the workflow bills on; the invoice takes its plans from the subscription's recorded timeline. */
  planCode: string;
  periodStart: Date;
  periodEnd: Date;
}

async function planOf(db: Queryable, code: string): Promise<Plan> {
  const plan = await getPlan(db, code);
  if (!plan) throw new InvoiceInputError(`plan ${code} does not exist`);
  return plan;
}

/** The plans' usage over [from, to) (src/metering/plan-usage.ts); an undefined meter is an input error here. */
async function measureUsage(
  db: Queryable,
  plans: readonly Plan[],
  customerId: string,
  from: Date,
  to: Date,
): Promise<Record<string, string>> {
  try {
    return await measurePlanUsage(db, plans, customerId, from, to);
  } catch (err) {
    if (err instanceof UnknownPlanMeterError) throw new InvoiceInputError(err.message);
    throw err;
  }
}

/** Usage of the meters the plan charges; meters only limited are not priced. */
const chargedUsage = (plan: Plan, usage: Record<string, string>) => {
  const charged = new Set(plan.charges.map((c) => c.meter));
  return Object.fromEntries(Object.entries(usage).filter(([m]) => charged.has(m)));
};

/** Meters whose usage adds up across segments, so tiers can continue from earlier segments. */
async function cumulativeMeters(db: Queryable, plans: readonly Plan[]): Promise<Set<string>> {
  const cumulative = new Set<string>();
  for (const code of metersOfPlans(plans)) {
    const meter = await getMeter(db, code);
    if (meter && (meter.aggregation === 'count' || meter.aggregation === 'sum')) cumulative.add(code);
  }
  return cumulative;
}

/**
 * The billed part [periodStart, periodEnd) of a subscription's period, cut into plan segments at
 * the changes recorded for it, each segment's usage measured from the stored events and priced
 * on its plan (src/domain/segment-pricing.ts). Also the period's usage per meter and the plan of its last segment.
 */
async function priceBilledPart(
  db: Queryable,
  subscriptionId: string,
  customerId: string,
  periodStart: Date,
  periodEnd: Date,
): Promise<{ lines: SegmentLine[]; usage: Record<string, string>; plan: Plan }> {
  const found = await planTimelineOf(db, subscriptionId);
  if (!found) throw new InvoiceInputError(`subscription ${subscriptionId} does not exist`);
  const from = periodStart.getTime();
  const to = periodEnd.getTime();
  // An empty billed part (only in histories from before BILL_UNTIL_CANCELLATION) bills its plan's lines at zero length.
  const segments =
    to > from ? planSegments(found.timeline, from, to) : [{ planCode: planAt(found.timeline, from), start: from, end: from }];
  const plans = new Map<string, Plan>();
  for (const { planCode } of segments) if (!plans.has(planCode)) plans.set(planCode, await planOf(db, planCode));
  const first = plans.get(segments[0]!.planCode)!;
  // Fixed fees are prorated against the whole period, also when a cancellation cuts its end or
  // the subscription start (after a billing anchor's boundary) its beginning.
  const full = periodContaining(found.billingAnchor, first.interval, periodStart);
  const priced = [];
  let usage: Record<string, string> = {};
  for (const segment of segments) {
    const plan = plans.get(segment.planCode)!;
    usage = await measureUsage(db, [plan], customerId, new Date(segment.start), new Date(segment.end));
    priced.push({ segment, plan, usage: chargedUsage(plan, usage) });
  }
  const { lines } = priceSegments({
    period: { start: full.start.getTime(), end: full.end.getTime() },
    segments: priced,
    cumulative: await cumulativeMeters(db, [...plans.values()]),
  });
  // With one segment its usage is the period's; a split period's usage is measured over the whole of it.
  if (segments.length > 1) usage = await measureUsage(db, [...plans.values()], customerId, periodStart, periodEnd);
  return { lines, usage, plan: plans.get(segments[segments.length - 1]!.planCode)! };
}

/** The period's charges over [periodStart, periodEnd), segment by segment (see priceBilledPart). Reads only. */
export async function priceCharges(
  db: Queryable,
  period: PeriodToInvoice,
): Promise<{ plan: Plan; usage: Record<string, string>; lines: SegmentLine[] }> {
  return priceBilledPart(db, period.subscriptionId, period.customerId, period.periodStart, period.periodEnd);
}

export const fromPriceLine = (l: PriceLine & { segment?: SegmentRef | null }): DraftContent['lines'][number] => ({
  type: l.type,
  meter: l.meter,
  model: l.model,
  quantity: l.quantity,
  description: l.description,
  exactAmount: l.exact_amount,
  amount: l.amount,
  breakdown: l.breakdown,
  adjusts: null,
  segment: l.segment ?? null,
});

/** Adjustment lines for usage that reached an earlier, finalized invoice's period after it was finalized. */
async function adjustmentLines(db: Queryable, earlier: Invoice, draftId: string | undefined): Promise<DraftContent['lines']> {
  const repriced = await priceBilledPart(db, earlier.subscriptionId, earlier.customerId, earlier.periodStart, earlier.periodEnd);
  // Its charges only: discounts and taxes are not repriced by late usage, credits are a payment.
  const billed = [...earlier.lines.filter((l) => l.type !== 'adjustment'), ...(await adjustmentsFor(db, earlier.id, draftId))].filter(
    isNotCredit,
  );
  const drafts = lateUsageAdjustments({
    currency: earlier.currency,
    period: { start: earlier.periodStart.toISOString(), end: earlier.periodEnd.toISOString() },
    billed: billed.filter(isChargeLine),
    repriced: repriced.lines,
  });
  return drafts.map((d) => ({
    type: 'adjustment',
    meter: d.meter,
    model: null,
    quantity: d.quantity,
    description: d.description,
    exactAmount: d.amount,
    amount: d.amount,
    breakdown: [],
    adjusts: { invoiceId: earlier.id, periodStart: earlier.periodStart, periodEnd: earlier.periodEnd },
    segment: d.segment,
  }));
}

/**
 * Everything a period's invoice says: usage recomputed from raw events, split into segments at
 * the subscription's plan changes and priced on each segment's plan, less what the period's
 * interim invoices billed already, then adjustment lines for late usage of up to
 * `lookbackInvoices` earlier finalized invoices of the customer, then discount and tax lines
 * (./after-pricing.ts). The invoice names the plan of its last segment. Reads only; the caller saves.
 */
export async function buildInvoice(
  db: Queryable,
  period: PeriodToInvoice,
  opts: { lookbackInvoices: number; draftId?: string },
): Promise<DraftContent> {
  const billed = await priceCharges(db, period);
  const { plan } = billed;
  const lines = billed.lines.map(fromPriceLine);
  lines.push(
    ...(await interimDeductionLines(db, { customerId: period.customerId, periodStart: period.periodStart, currency: plan.currency })),
  );
  const earlier =
    opts.lookbackInvoices > 0 ? await adjustableInvoices(db, period.customerId, period.periodStart, opts.lookbackInvoices) : [];
  for (const invoice of earlier) lines.push(...(await adjustmentLines(db, invoice, opts.draftId)));
  const after = await discountAndTaxLines(
    db,
    { ...period, currency: plan.currency, rounding: plan.rounding ?? 'half_up', draftId: opts.draftId },
    lines,
  );
  lines.push(...after.lines);
  return {
    customerId: period.customerId,
    subscriptionId: period.subscriptionId,
    planCode: plan.id,
    currency: plan.currency,
    kind: 'period',
    sequence: 0,
    threshold: null,
    periodStart: period.periodStart,
    periodEnd: period.periodEnd,
    usage: billed.usage,
    total: after.totals.gross,
    lines,
  };
}
