import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { interimBilledLine, interimCut, interimUsageLines, totalOf, type InterimInvoiceBilled } from '../../src/domain/interim-billing';
import { Decimal, ZERO, formatMoney } from '../../src/domain/money';
import type { BillingInterval } from '../../src/domain/periods-schema';
import { planSegments, type PlanTimeline } from '../../src/domain/plan-segments';
import type { PricePlan } from '../../src/domain/pricing';
import { priceSegments } from '../../src/domain/segment-pricing';
import { inSpan, oracleTotal } from '../support/plan-timeline-oracle';

/*
 * Progressive billing over a plan timeline (issue 18: "works with late events, plan changes and
 * cancellation"), on the pure functions the invoice builder composes: interim invoices cut at
 * random instants, each pricing [period start, cut) on the plan timeline with the events stored by
 * then, less the earlier ones (src/invoices/progressive.ts); upgrades and downgrades between
 * them; events stored late (after a cut they belong before); a cancellation, recorded before or
 * after interim invoices the workflow cut on its own clock after the cancellation instant. Checked:
 * the period's invoices add up to the independent recomputation to the cent, no cut passes the
 * end of billing, and the period invoice is never negative when every plan prices monotonically.
 */

const HOUR = 3_600_000;
const interval: BillingInterval = { kind: 'duration', iso: 'PT1H' };
const t0 = Date.parse('2026-03-01T00:00:00Z');
const full = { start: t0, end: t0 + HOUR };

type CatalogPlan = PricePlan & { id: string };
const tiers = [
  { up_to: '100', unit_price: '0.05', flat_fee: '1.00' },
  { up_to: '1000', unit_price: '0.02' },
  { up_to: null, unit_price: '0.01' },
];
const catalog: CatalogPlan[] = [
  { id: 'basic', currency: 'USD', base_fee: '10.00', charges: [{ meter: 'calls', model: 'per_unit', unit_price: '0.013' }] },
  {
    id: 'pro',
    currency: 'USD',
    base_fee: '50.00',
    minimum_commitment: '80.00',
    charges: [
      { meter: 'calls', model: 'graduated', tiers },
      { meter: 'gb', model: 'package', package_size: '10', package_price: '0.50', free_units: '5' },
    ],
  },
  {
    id: 'bulk',
    currency: 'USD',
    proration: 'full',
    tiers_across_segments: 'per_segment',
    charges: [
      { meter: 'calls', model: 'volume', tiers },
      { meter: 'gb', model: 'per_unit', unit_price: '0.1' },
    ],
  },
  {
    id: 'metered',
    currency: 'USD',
    base_fee: '25.00',
    minimum_commitment: '30.00',
    proration: 'none',
    rounding: 'half_even',
    charges: [{ meter: 'calls', model: 'overage', included_units: '500', unit_price: '0.0375' }],
  },
];
const planNamed = (code: string) => catalog.find((p) => p.id === code)!;
const meters = ['calls', 'gb'];
/** Volume pricing bills less for more units past a tier edge: only there may later usage lower what is owed. */
const monotonic = (code: string) => planNamed(code).charges.every((c) => c.model !== 'volume');

interface Event {
  at: number;
  meter: string;
  quantity: string;
  /** When it is stored: `at`, or later (a late event). */
  storedAt: number;
}

interface Scenario {
  timeline: PlanTimeline;
  /** When the workflow asks for each interim invoice, in order. */
  asks: number[];
  /** Asked for at `at`; recorded after `afterInterims` interim invoices were drafted. */
  cancellation: { at: number; afterInterims: number } | undefined;
  events: Event[];
}

/** Instants in the period, often on the hour's edges. */
const instant = fc.oneof(fc.integer({ min: 1, max: HOUR - 1 }), fc.constantFrom(1, HOUR / 2, HOUR - 1));
const quantity = fc
  .tuple(fc.integer({ min: 1, max: 40_000 }), fc.integer({ min: 0, max: 2 }))
  .map(([n, scale]) => new Decimal(n).div(10 ** scale).toFixed());

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    initialPlan: fc.constantFrom(...catalog.map((p) => p.id)),
    changes: fc.array(fc.record({ at: instant, toPlan: fc.constantFrom(...catalog.map((p) => p.id)) }), { maxLength: 3 }),
    asks: fc.uniqueArray(instant, { minLength: 1, maxLength: 4 }),
    cancellation: fc.option(fc.record({ at: instant, afterInterims: fc.integer({ min: 0, max: 4 }) }), { nil: undefined }),
    events: fc.array(
      fc.record({ at: instant, meter: fc.constantFrom(...meters), quantity, delay: fc.option(instant, { nil: undefined }) }),
      { maxLength: 30 },
    ),
  })
  .map(({ initialPlan, changes, asks, cancellation, events }) => {
    // The service refuses plan changes once the subscription is canceled.
    const kept = changes
      .map((c) => ({ at: t0 + c.at, toPlan: c.toPlan }))
      .filter((c) => cancellation === undefined || c.at < t0 + cancellation.at)
      .sort((a, b) => a.at - b.at);
    return {
      timeline: { initialPlan, changes: kept },
      asks: asks.map((a) => t0 + a).sort((a, b) => a - b),
      cancellation: cancellation && { at: t0 + cancellation.at, afterInterims: Math.min(cancellation.afterInterims, asks.length) },
      events: events.map((e) => ({ at: t0 + e.at, meter: e.meter, quantity: e.quantity, storedAt: t0 + e.at + (e.delay ?? 0) })),
    };
  });

/** [start, end) priced segment by segment on the timeline, with the given events: what priceBilledPart computes. */
function price(timeline: PlanTimeline, end: number, events: readonly Event[]) {
  const segments = planSegments(timeline, full.start, end).map((segment) => {
    const plan = planNamed(segment.planCode);
    const usage: Record<string, string> = {};
    for (const { meter } of plan.charges) {
      usage[meter] = events
        .filter((e) => e.meter === meter && inSpan(e.at, segment.start, segment.end))
        .reduce((sum, e) => sum.plus(e.quantity), ZERO)
        .toFixed();
    }
    return { segment, plan, usage };
  });
  return priceSegments({ period: full, segments, cumulative: new Set(meters) });
}

/** The period's invoices as the workflow and the invoice builder issue them. */
function billPeriod(s: Scenario) {
  let cancelAt: number | null = null;
  const recordCancellation = (interims: readonly { cut: number }[]) => {
    // cancelSubscription: billing ends at the later of the instant asked and the last interim cut.
    const lastCut = Math.max(-Infinity, ...interims.map((i) => i.cut));
    cancelAt = Math.max(s.cancellation!.at, lastCut);
  };
  const interims: Array<InterimInvoiceBilled & { cut: number }> = [];
  for (const [i, ask] of s.asks.entries()) {
    if (s.cancellation && s.cancellation.afterInterims === i) recordCancellation(interims);
    const cut = interimCut(new Date(full.start), new Date(ask), cancelAt === null ? null : new Date(cancelAt)).getTime();
    const known = s.events.filter((e) => e.storedAt <= ask);
    const lines: Array<{ amount: string }> = interimUsageLines(price(s.timeline, cut, known).lines);
    const deduction = interimBilledLine('USD', interims);
    if (deduction) lines.push(deduction);
    interims.push({ sequence: i + 1, cut, total: formatMoney(totalOf(lines), 'USD') });
  }
  if (s.cancellation && s.cancellation.afterInterims === s.asks.length) recordCancellation(interims);
  const billedUntil = Math.min(cancelAt ?? full.end, full.end);
  // The period invoice is drafted after the allowed lateness: every event is stored by then.
  const deduction = interimBilledLine('USD', interims);
  const period = totalOf([...price(s.timeline, billedUntil, s.events).lines, ...(deduction ? [deduction] : [])]);
  return { interims, period, cancelAt: cancelAt as number | null, billedUntil };
}

describe('progressive billing over a plan timeline', () => {
  test('property: interim invoices and the period invoice add up to the timeline recomputation; no cut passes the cancellation', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        const { interims, period, cancelAt, billedUntil } = billPeriod(s);
        for (const interim of interims) assert.ok(interim.cut <= billedUntil, `interim #${interim.sequence} cut after the end of billing`);
        const sum = interims.reduce((acc, i) => acc.plus(i.total), period);
        const expected = oracleTotal(
          { anchor: t0, interval, timeline: s.timeline, cancelAt: cancelAt ?? undefined, horizon: full.end, events: s.events },
          planNamed,
        );
        assert.equal(sum.toFixed(2), expected.toFixed(2));
        const plans = [s.timeline.initialPlan, ...s.timeline.changes.map((c) => c.toPlan)];
        if (plans.every(monotonic)) assert.ok(period.gte(0), `period invoice ${period.toFixed(2)}`);
      }),
      { numRuns: 400 },
    );
  });

  test('the race: an interim invoice asked for after a recorded cancellation is cut at the cancellation', () => {
    // 10:00–11:00 on basic (10.00 base, 0.013 per call): 1000 calls before the cancellation at 10:15, 1000 after it.
    const s: Scenario = {
      timeline: { initialPlan: 'basic', changes: [] },
      asks: [t0 + HOUR / 2],
      cancellation: { at: t0 + HOUR / 4, afterInterims: 0 },
      events: [
        { at: t0 + 1000, meter: 'calls', quantity: '1000', storedAt: t0 + 1000 },
        { at: t0 + HOUR / 3, meter: 'calls', quantity: '1000', storedAt: t0 + HOUR / 3 },
      ],
    };
    const { interims, period } = billPeriod(s);
    assert.deepEqual(
      interims.map((i) => [new Date(i.cut).toISOString(), i.total]),
      [['2026-03-01T00:15:00.000Z', '13.00']],
    );
    // A quarter of the base fee (2.50) and the calls billed already: 2.50 + 13.00 − 13.00.
    assert.equal(period.toFixed(2), '2.50');
  });

  test('the race the other way: a cancellation recorded after an interim cut later than it ends billing at the cut', () => {
    const s: Scenario = {
      timeline: { initialPlan: 'basic', changes: [] },
      asks: [t0 + HOUR / 2],
      cancellation: { at: t0 + HOUR / 4, afterInterims: 1 },
      events: [
        { at: t0 + 1000, meter: 'calls', quantity: '1000', storedAt: t0 + 1000 },
        { at: t0 + HOUR / 3, meter: 'calls', quantity: '1000', storedAt: t0 + HOUR / 3 },
      ],
    };
    const { interims, period, cancelAt } = billPeriod(s);
    assert.equal(new Date(cancelAt!).toISOString(), '2026-03-01T00:30:00.000Z');
    assert.deepEqual(
      interims.map((i) => i.total),
      ['26.00'],
    );
    // Half the base fee; the 2000 calls were billed by the interim invoice.
    assert.equal(period.toFixed(2), '5.00');
  });

  test('interimCut: the ask, the cancellation when earlier, never before the period start', () => {
    const at = (m: number) => new Date(t0 + m * 60_000);
    assert.equal(interimCut(at(0), at(30), null).getTime(), at(30).getTime());
    assert.equal(interimCut(at(0), at(30), at(45)).getTime(), at(30).getTime());
    assert.equal(interimCut(at(0), at(30), at(15)).getTime(), at(15).getTime());
    assert.equal(interimCut(at(0), at(30), at(30)).getTime(), at(30).getTime());
    assert.equal(interimCut(at(0), at(30), at(-5)).getTime(), at(0).getTime());
  });
});
