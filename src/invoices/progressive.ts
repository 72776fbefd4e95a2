import type { Queryable } from '../db/transaction';
import { interimCut, interimUsageLines, totalOf } from '../domain/interim-billing';
import { formatMoney } from '../domain/money';
import { usageToReach } from '../domain/spend-projection';
import { nextThreshold, thresholdReached } from '../domain/spend-thresholds';
import type { SpendThresholds } from '../domain/spend-thresholds-schema';
import { fromPriceLine, priceCharges, type PeriodToInvoice } from './builder';
import { interimDeductionLines } from './interim-deduction';
import type { DraftContent } from './store';
import { planTimelineOf } from '../subscriptions/store';

/*
 * Progressive (threshold) billing on the invoice side. The open period is priced with the same
 * builder as the period invoice (usage from the raw events, never the counters), over
 * [period start, now): the billing workflow asks what the priced usage is, and when it reached a
 * spend threshold, drafts an interim invoice for the usage so far less earlier interim invoices.
 */

/** An interim invoice to draft: `periodEnd` is the instant it is cut at, `sequence` its number in the period (1, 2, …). */
export interface InterimToInvoice extends PeriodToInvoice {
  sequence: number;
  /** The spend threshold reached. */
  threshold: string;
}

/** [start, until) of an interim invoice or the open period's pricing, cut at the subscription's recorded cancellation (interimCut). */
async function cutAtCancellation<P extends PeriodToInvoice>(db: Queryable, period: P): Promise<P> {
  const found = await planTimelineOf(db, period.subscriptionId);
  return { ...period, periodEnd: interimCut(period.periodStart, period.periodEnd, found?.cancelAt ?? null) };
}

/**
 * The interim invoice's content: usage lines of [start, cut) priced from the period start, less
 * earlier interim invoices. The cut is the one asked for, or the cancellation when that is earlier.
 */
export async function buildInterimInvoice(db: Queryable, asked: InterimToInvoice): Promise<DraftContent> {
  const interim = await cutAtCancellation(db, asked);
  const { plan, usage, lines: priced } = await priceCharges(db, interim);
  const lines = interimUsageLines(priced).map(fromPriceLine);
  lines.push(
    ...(await interimDeductionLines(db, {
      customerId: interim.customerId,
      periodStart: interim.periodStart,
      currency: plan.currency,
      beforeSequence: interim.sequence,
    })),
  );
  return {
    customerId: interim.customerId,
    subscriptionId: interim.subscriptionId,
    planCode: plan.id,
    currency: plan.currency,
    kind: 'interim',
    sequence: interim.sequence,
    threshold: interim.threshold,
    periodStart: interim.periodStart,
    periodEnd: interim.periodEnd,
    usage,
    total: formatMoney(totalOf(lines), plan.currency),
    lines,
  };
}

/** The open period's priced usage and where it stands against the spend thresholds. */
export interface OpenPeriodSpend {
  /** Priced usage of [start, now): the sum of the usage lines, each rounded. */
  spend: string;
  /** The highest threshold at or below it; null when none. */
  reached: string | null;
  /** The lowest threshold above it; null when none is left. */
  next: string | null;
  /** Per charged meter, its usage at which `next` is reached (see usageToReach); empty without `next`. */
  decisionPoints: Record<string, string | null>;
}

/** Prices [start, periodEnd) as the interim invoice would (cut at a cancellation too), without saving anything. */
export async function priceOpenPeriod(db: Queryable, period: PeriodToInvoice, thresholds: SpendThresholds): Promise<OpenPeriodSpend> {
  const { plan, usage, lines } = await priceCharges(db, await cutAtCancellation(db, period));
  const spend = totalOf(interimUsageLines(lines));
  const reached = thresholdReached(thresholds, spend);
  const next = nextThreshold(thresholds, spend);
  return {
    spend: formatMoney(spend, plan.currency),
    reached: reached?.toFixed() ?? null,
    next: next?.toFixed() ?? null,
    decisionPoints: next ? usageToReach(plan, usage, next.minus(spend)) : {},
  };
}
