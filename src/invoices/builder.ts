import type { Queryable } from '../db/transaction';
import { isNotCredit } from '../domain/credit-drawdown';
import { lateUsageAdjustments } from '../domain/invoice-adjustments';
import { pricePlan } from '../domain/pricing/price-plan';
import type { PriceLine } from '../domain/pricing/schema';
import type { Plan } from '../domain/plan';
import { getMeter } from '../meters/store';
import { queryUsage } from '../metering/usage-query';
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
  planCode: string;
  periodStart: Date;
  periodEnd: Date;
}

async function planOf(db: Queryable, code: string): Promise<Plan> {
  const plan = await getPlan(db, code);
  if (!plan) throw new InvoiceInputError(`plan ${code} does not exist`);
  return plan;
}

/**
 * Exact usage of every meter the plan charges or limits, over [from, to), from the stored events
 * (never the real-time counters). Aggregations with no events (max, latest) count as 0.
 */
export async function measureUsage(db: Queryable, plan: Plan, customerId: string, from: Date, to: Date): Promise<Record<string, string>> {
  const usage: Record<string, string> = {};
  for (const code of [...new Set([...plan.charges.map((c) => c.meter), ...plan.limits.map((l) => l.meter)])].sort()) {
    const meter = await getMeter(db, code);
    if (!meter) throw new InvoiceInputError(`meter ${code} of plan ${plan.id} does not exist`);
    usage[code] = (await queryUsage(db, { customerId, meter, from, to })).value ?? '0';
  }
  return usage;
}

/** The plan's price for that usage; meters only limited, not charged, are not priced. */
function price(plan: Plan, usage: Record<string, string>) {
  const charged = new Set(plan.charges.map((c) => c.meter));
  return pricePlan(plan, Object.fromEntries(Object.entries(usage).filter(([m]) => charged.has(m))));
}

export const fromPriceLine = (l: PriceLine): DraftContent['lines'][number] => ({
  type: l.type,
  meter: l.meter,
  model: l.model,
  quantity: l.quantity,
  description: l.description,
  exactAmount: l.exact_amount,
  amount: l.amount,
  breakdown: l.breakdown,
  adjusts: null,
});

/** Adjustment lines for usage that reached an earlier, finalized invoice's period after it was finalized. */
async function adjustmentLines(db: Queryable, earlier: Invoice, draftId: string | undefined): Promise<DraftContent['lines']> {
  const plan = await planOf(db, earlier.planCode);
  const repriced = price(plan, await measureUsage(db, plan, earlier.customerId, earlier.periodStart, earlier.periodEnd));
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
  }));
}

/** The period's charges over [periodStart, periodEnd): usage from raw events, priced on the plan. Reads only. */
export async function priceCharges(
  db: Queryable,
  period: PeriodToInvoice,
): Promise<{ plan: Plan; usage: Record<string, string>; lines: PriceLine[] }> {
  const plan = await planOf(db, period.planCode);
  const usage = await measureUsage(db, plan, period.customerId, period.periodStart, period.periodEnd);
  return { plan, usage, lines: price(plan, usage).lines };
}

/**
 * Everything a period's invoice says: usage recomputed from raw events, priced with the tariff
 * engine on the subscription's plan, less what the period's interim invoices billed already, then
 * adjustment lines for late usage of up to `lookbackInvoices` earlier finalized invoices of the
 * customer, then discount and tax lines (./after-pricing.ts). Reads only; the caller saves.
 */
export async function buildInvoice(
  db: Queryable,
  period: PeriodToInvoice,
  opts: { lookbackInvoices: number; draftId?: string },
): Promise<DraftContent> {
  const { plan, usage, lines: priced } = await priceCharges(db, period);
  const lines = priced.map(fromPriceLine);
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
    usage,
    total: after.totals.gross,
    lines,
  };
}
