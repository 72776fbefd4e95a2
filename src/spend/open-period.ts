import { getAutoTopUp } from '../credits/store';
import type { Queryable } from '../db/transaction';
import { formatExact, formatMoney } from '../domain/money';
import { nextSpendTarget, type OpenPeriodSpend } from '../domain/spend-limit';
import type { SpendCap } from '../domain/spend-limit-schema';
import { spendOf, spendRunway } from '../domain/spend-projection';
import { readUsageTotals } from '../metering/usage-totals';
import { getPlan } from '../plans/store';
import { leastAvailable, type AvailableMoney } from './available-money';

export interface OpenPeriod {
  /** Internal customer id. */
  customerId: string;
  planCode: string;
  periodStart: Date;
  periodEnd: Date;
  spendCap: SpendCap | null;
  /** Soft thresholds of the cap already notified this period: no longer decision points. */
  notified: readonly string[];
}

/**
 * Prices the open period's usage incrementally, from the real-time counters (the quota truth,
 * one statement) rather than the raw events the invoice recomputes from: cheap enough to run on
 * every usage report of a spend-limited subscription. Meters whose aggregation does not add up
 * (max, unique_count, latest) have no counter total and count as unused here; the invoice prices
 * them. Reads only.
 */
export async function priceSpend(
  db: Queryable,
  period: OpenPeriod,
  sources: readonly AvailableMoney[],
): Promise<OpenPeriodSpend | undefined> {
  const plan = await getPlan(db, period.planCode);
  if (!plan) return undefined;
  const meters = [...new Set(plan.charges.map((c) => c.meter))];
  const usage = await readUsageTotals(db, { customerId: period.customerId, meters, start: period.periodStart, end: period.periodEnd });
  const spent = spendOf(plan, usage);
  const limit = await leastAvailable(sources, {
    customerId: period.customerId,
    currency: plan.currency,
    periodStart: period.periodStart,
    spendCap: period.spendCap,
    settlement: plan.settlement ?? 'credit_then_invoice',
  });
  const runway = limit ? spendRunway(plan, usage, limit.amount) : {};
  const thresholds = period.spendCap?.soft_thresholds?.map((t) => t.percent) ?? [];
  const target = limit && nextSpendTarget(limit.amount, spent, thresholds, period.notified);
  const topUp = limit?.source === 'credits' ? await getAutoTopUp(db, period.customerId, plan.currency) : undefined;
  return {
    currency: plan.currency,
    meters,
    usage,
    spent: formatMoney(spent, plan.currency),
    available: limit && formatExact(limit.amount),
    source: limit?.source ?? null,
    runway,
    nextDecision: limit && target && !target.eq(limit.amount) ? spendRunway(plan, usage, target) : runway,
    ...(topUp?.enabled ? { autoTopUpBelow: topUp.threshold } : {}),
  };
}
