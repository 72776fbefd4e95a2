import { Decimal, ZERO, formatExact } from './money';
import type { PlanSegment } from './plan-segments';
import { pricePlan, type SegmentTerms } from './pricing/price-plan';
import type { PriceLine, PricePlan, Usage } from './pricing/schema';
import { prorateFixed } from './proration';

/*
 * A billing period priced segment by segment (see plan-segments.ts). Each segment's usage is
 * priced on its own plan; fixed amounts are that plan's share for the segment (proration.ts);
 * tiers are one ladder shared by the period unless the segment's plan says `per_segment`. A
 * period on one plan from start to end is priced exactly as pricePlan prices it, and its lines
 * carry no segment.
 *
 * Shared ladder, worked: graduated tiers 0–100 at 1.00 then 0.50, 150 units before an upgrade
 * and 100 after, on a plan with 0–100 at 0.80 then 0.40. Segment 1: 100 × 1.00 + 50 × 0.50 =
 * 125.00. Segment 2 continues at unit 150 on its own prices: price(250) − price(150) on the new
 * plan = (80 + 60) − (80 + 20) = 40.00, i.e. 100 × 0.40. With `per_segment` segment 2 would
 * restart: 100 × 0.80 = 80.00. Only meters whose usage adds up across segments (count, sum) can
 * share a ladder; max, unique_count and latest are priced per segment.
 */

/** The segment a line bills, as an invoice shows it: plan and half-open [start, end), ISO 8601. */
export interface SegmentRef {
  planCode: string;
  start: string;
  end: string;
}

export type SegmentLine = PriceLine & { segment: SegmentRef | null };

export interface SegmentToPrice {
  segment: PlanSegment;
  plan: PricePlan & { id: string };
  /** Usage in [segment.start, segment.end) of the meters the plan charges. */
  usage: Usage;
}

export interface SegmentedPeriod {
  /** The full billing period (epoch ms): fixed amounts are prorated against its length. */
  period: { start: number; end: number };
  /** In order, without gaps: planSegments of the billed part of the period. */
  segments: readonly SegmentToPrice[];
  /** Meters whose usage adds up across segments (count and sum aggregations): the only ones a ladder can continue on. */
  cumulative: ReadonlySet<string>;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Why a fixed amount is a part of the plan's: shown on its line. */
function fixedNote(plan: PricePlan, segment: PlanSegment, period: { start: number; end: number }): string {
  if (segment.start <= period.start && segment.end >= period.end) return '';
  const span = `${iso(segment.start)} – ${iso(segment.end)}`;
  switch (plan.proration ?? 'prorated') {
    case 'prorated': {
      const share = new Decimal(segment.end - segment.start).div(period.end - period.start).times(100);
      return `(prorated: ${span}, ${formatExact(share.toDecimalPlaces(4))}% of the period)`;
    }
    case 'full':
      return `(in full for ${span}: the plan does not prorate)`;
    case 'none':
      return `(not billed for ${span}: the plan bills fixed amounts for whole periods only)`;
  }
}

/** Every line of the period, segment after segment; the total is the sum of the rounded lines. */
export function priceSegments(input: SegmentedPeriod): { lines: SegmentLine[]; total: Decimal } {
  const { period, segments, cumulative } = input;
  const split = segments.length > 1;
  const usedBefore: Record<string, Decimal> = {};
  const lines: SegmentLine[] = [];
  for (const { segment, plan, usage } of segments) {
    const shares = plan.tiers_across_segments !== 'per_segment';
    const usedEarlier = shares ? Object.fromEntries([...cumulative].filter((m) => usedBefore[m]).map((m) => [m, usedBefore[m]!])) : {};
    const terms: SegmentTerms = {
      prorate: (amount) => prorateFixed(amount, plan.proration, segment, period),
      usedEarlier,
      fixedNote: fixedNote(plan, segment, period),
    };
    const ref = split ? { planCode: plan.id, start: iso(segment.start), end: iso(segment.end) } : null;
    for (const line of pricePlan(plan, usage, terms).lines) lines.push({ ...line, segment: ref });
    for (const [meter, quantity] of Object.entries(usage)) {
      if (cumulative.has(meter)) usedBefore[meter] = (usedBefore[meter] ?? ZERO).plus(quantity);
    }
  }
  return { lines, total: lines.reduce((sum, l) => sum.plus(l.amount), ZERO) };
}
