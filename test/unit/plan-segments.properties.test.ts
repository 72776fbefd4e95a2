import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { lateUsageAdjustments, type BilledLine } from '../../src/domain/invoice-adjustments';
import { Decimal, ZERO, type Decimal as DecimalValue } from '../../src/domain/money';
import type { BillingInterval } from '../../src/domain/periods-schema';
import { planSegments } from '../../src/domain/plan-segments';
import { pricePlan, type PricePlan } from '../../src/domain/pricing';
import { priceSegments, type SegmentLine, type SegmentRef } from '../../src/domain/segment-pricing';
import {
  ALLOWED_LATENESS_MS,
  billedPeriods,
  billingStop,
  inSpan,
  oracleTotal,
  type TimelineSubscription,
} from '../support/plan-timeline-oracle';

/*
 * No event left behind, over random subscription lifecycles, on the pure functions the invoice
 * builder composes (planSegments, priceSegments, lateUsageAdjustments): subscribe (on a boundary,
 * or mid-period on a billing anchor), upgrades and downgrades (at once or at the period end), a
 * cancellation at any instant — often just after a boundary, inside the lateness of the period
 * before, and learnt late (while that period is closing, or after it closed: its invoice then
 * stands in full) — a resubscription, events at random instants, before the start and exactly on
 * boundaries, some arriving only after their period was invoiced. Checked: every event of a subscription is in exactly one (invoice, segment), the
 * quantities of each segment's lines add up to its events, and the sum of all invoices equals an
 * independent recomputation — each event priced at the margin of its plan's ladder — to the cent.
 */

const HOUR = 3_600_000;
const interval: BillingInterval = { kind: 'duration', iso: 'PT1H' };
const t0 = Date.parse('2026-03-01T00:00:00Z');

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

interface StoredEvent {
  at: number;
  meter: string;
  quantity: string;
  /** Arrives after its period was invoiced: billed by an adjustment on the next invoice. */
  late: boolean;
}

type Subscription = Omit<TimelineSubscription, 'events'> & { events: StoredEvent[] };

/** A lifecycle operation, `at` in ms after the first boundary of the billing anchor's schedule at or before the start. */
type Op = { kind: 'change'; at: number; plan: string; atPeriodEnd: boolean } | { kind: 'cancel'; at: number; learntAfter: number };

/** Instants that are often exactly on a period boundary or a change. */
const instant = (span: number) =>
  fc.oneof(
    fc.integer({ min: 0, max: span - 1 }),
    fc.integer({ min: 0, max: Math.floor(span / HOUR) - 1 }).map((h) => h * HOUR),
    fc.integer({ min: 1, max: Math.floor(span / HOUR) - 1 }).map((h) => h * HOUR - 1),
  );

/** A cancellation instant: anywhere, or just after a boundary (inside the lateness of the period before it). */
const cancelInstant = (span: number) =>
  fc.oneof(
    instant(span),
    fc
      .tuple(
        fc.integer({ min: 1, max: Math.floor(span / HOUR) - 1 }),
        fc.oneof(fc.constant(1), fc.integer({ min: 1, max: ALLOWED_LATENESS_MS - 1 })),
      )
      .map(([h, after]) => h * HOUR + after),
  );

/** How long after its instant the workflow learns of a cancellation: at once, within the lateness, or after a close. */
const learntAfter = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 1, max: ALLOWED_LATENESS_MS }),
  fc.integer({ min: ALLOWED_LATENESS_MS, max: 2 * HOUR }),
);

const quantity = fc
  .tuple(fc.integer({ min: 0, max: 400_000 }), fc.integer({ min: 0, max: 3 }))
  .map(([n, scale]) => new Decimal(n).div(10 ** scale).toFixed());

/**
 * A subscription whose billing anchor's schedule has a boundary at `base`: it starts there, or
 * (with `billing_anchor`) up to a period later; events may precede the start (they are not its).
 */
const subscriptionArb = (base: number, periods: number) => {
  const span = periods * HOUR;
  const op: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('change' as const),
        at: instant(span),
        plan: fc.constantFrom(...catalog.map((p) => p.id)),
        atPeriodEnd: fc.boolean(),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), at: cancelInstant(span), learntAfter }) },
  );
  return fc
    .record({
      startOffset: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: HOUR - 1 }), fc.constant(HOUR - 1)),
      initialPlan: fc.constantFrom(...catalog.map((p) => p.id)),
      ops: fc.array(op, { maxLength: 6 }),
      events: fc.array(fc.record({ at: instant(span), meter: fc.constantFrom(...meters), quantity, late: fc.boolean() }), {
        maxLength: 40,
      }),
    })
    .map(({ startOffset, initialPlan, ops, events }): Subscription => {
      const start = base + startOffset;
      // Applied in time order, as the service would record them: a change at the period end lands
      // on the next boundary; nothing happens to the subscription before it starts.
      const changes: Array<{ at: number; toPlan: string }> = [];
      let cancelAt: number | undefined;
      let cancelLearntAt: number | undefined;
      let current = initialPlan;
      for (const o of [...ops].filter((o) => o.at >= startOffset).sort((a, b) => a.at - b.at)) {
        const at = base + o.at;
        if (cancelAt !== undefined && at >= cancelAt) break;
        if (o.kind === 'cancel') {
          cancelAt = at;
          cancelLearntAt = at + o.learntAfter;
          continue;
        }
        if (o.plan === current) continue;
        const effective = o.atPeriodEnd ? base + Math.ceil((o.at + 1) / HOUR) * HOUR : at;
        changes.push({ at: effective, toPlan: o.plan });
        current = o.plan;
      }
      changes.sort((a, b) => a.at - b.at);
      return {
        anchor: start,
        ...(startOffset === 0 ? {} : { billingAnchor: base }),
        interval,
        timeline: { initialPlan, changes },
        cancelAt,
        ...(cancelLearntAt === undefined ? {} : { cancelLearntAt }),
        horizon: base + span,
        events: events.map((e) => ({ ...e, at: base + e.at })),
      };
    });
};

/** A customer: a subscription, then possibly a resubscription after the first one was canceled. */
const customerArb = fc
  .tuple(subscriptionArb(t0, 4), fc.integer({ min: 0, max: 3 * HOUR }), fc.boolean())
  .chain(([first, gap, resubscribes]) => {
    if (!resubscribes || first.cancelAt === undefined) return fc.constant<Subscription[]>([first]);
    const end = billingStop(first);
    return subscriptionArb(end + gap, 3).map((second) => [first, second]);
  });

interface Invoice {
  period: { start: number; end: number };
  lines: Array<SegmentLine | (BilledLine & { type: 'adjustment'; adjusts: number; segment: SegmentRef | null })>;
}

/** What the builder does for one billed part, with the events known so far. */
function price(s: Subscription, full: { start: number; end: number }, start: number, end: number, events: StoredEvent[]) {
  const segments = planSegments(s.timeline, start, end).map((segment) => {
    const plan = planNamed(segment.planCode);
    const charged = new Set(plan.charges.map((c) => c.meter));
    const usage: Record<string, string> = {};
    for (const m of charged) {
      usage[m] = events
        .filter((e) => e.meter === m && inSpan(e.at, segment.start, segment.end))
        .reduce((sum, e) => sum.plus(e.quantity), ZERO)
        .toFixed();
    }
    return { segment, plan, usage };
  });
  return priceSegments({ period: full, segments, cumulative: new Set(meters) });
}

/** The invoices, in order: each period on its events in time, then adjustments for late ones on the next invoice. */
function invoicesOf(s: Subscription): Invoice[] {
  const periods = billedPeriods(s);
  const invoices: Invoice[] = [];
  periods.forEach(({ full, start, end }, i) => {
    const lines: Invoice['lines'] = price(
      s,
      full,
      start,
      end,
      s.events.filter((e) => !e.late),
    ).lines;
    const previous = invoices[i - 1];
    if (previous) {
      const p = periods[i - 1]!;
      const repriced = price(s, p.full, p.start, p.end, s.events).lines;
      const drafts = lateUsageAdjustments({
        currency: 'USD',
        period: { start: new Date(p.start).toISOString(), end: new Date(p.end).toISOString() },
        billed: previous.lines.filter((l) => l.type !== 'adjustment'),
        repriced,
      });
      for (const d of drafts)
        lines.push({ type: 'adjustment', meter: d.meter, quantity: d.quantity, amount: d.amount, segment: d.segment, adjusts: i - 1 });
    }
    invoices.push({ period: { start, end }, lines });
  });
  // The last period's late events: on the invoice that follows (a resubscription's, or the next one).
  const last = periods[periods.length - 1];
  if (last && s.events.some((e) => e.late)) {
    const billed = invoices[invoices.length - 1]!.lines.filter((l) => l.type !== 'adjustment');
    const repriced = price(s, last.full, last.start, last.end, s.events).lines;
    const drafts = lateUsageAdjustments({ currency: 'USD', period: { start: '', end: '' }, billed, repriced });
    invoices.push({
      period: { start: last.end, end: last.end },
      lines: drafts.map((d) => ({
        type: 'adjustment',
        meter: d.meter,
        quantity: d.quantity,
        amount: d.amount,
        segment: d.segment,
        adjusts: invoices.length - 1,
      })),
    });
  }
  return invoices;
}

describe('plan segments: no event left behind', () => {
  test('every event is in exactly one invoice segment, each segment bills its events, and the sum matches the recomputation', () => {
    fc.assert(
      fc.property(customerArb, (subscriptions) => {
        for (const s of subscriptions) {
          const invoices = invoicesOf(s);
          const stop = billingStop(s);
          // Where each line's units were used: its segment, else its invoice's period (or, for an adjustment, the adjusted one's).
          const spanOf = (invoice: Invoice, line: Invoice['lines'][number]) => {
            if (line.segment) return { start: Date.parse(line.segment.start), end: Date.parse(line.segment.end) };
            return 'adjusts' in line ? invoices[line.adjusts]!.period : invoice.period;
          };
          for (const event of s.events) {
            const holders = invoices.flatMap((inv) => planSegmentsOf(inv).filter((span) => inSpan(event.at, span.start, span.end)));
            // Events before the start are not this subscription's; after the stop, no one's.
            assert.equal(holders.length, event.at >= s.anchor && event.at < stop ? 1 : 0, `event at ${new Date(event.at).toISOString()}`);
          }
          // Per span and meter: the units billed (usage lines and adjustments) are the units used.
          const billed = new Map<string, DecimalValue>();
          for (const invoice of invoices) {
            for (const line of invoice.lines) {
              if (line.meter === null || (line.type !== 'usage' && line.type !== 'adjustment')) continue;
              const span = spanOf(invoice, line);
              const key = `${span.start}/${span.end}/${line.meter}`;
              billed.set(key, (billed.get(key) ?? ZERO).plus(line.quantity ?? 0));
            }
          }
          for (const [key, units] of billed) {
            const [start, end, meter] = key.split('/');
            const used = s.events
              .filter((e) => e.meter === meter && inSpan(e.at, Number(start), Number(end)))
              .reduce((sum, e) => sum.plus(e.quantity), ZERO);
            assert.equal(units.toFixed(), used.toFixed(), key);
          }
          const sum = invoices.flatMap((i) => i.lines).reduce((acc, l) => acc.plus(l.amount), ZERO);
          assert.equal(sum.toFixed(2), oracleTotal(s, planNamed).toFixed(2));
        }
      }),
      { numRuns: 300 },
    );
  });

  test('one plan all period: priced exactly as pricePlan prices it, lines without segment', () => {
    fc.assert(
      fc.property(fc.constantFrom(...catalog), fc.array(quantity, { minLength: 2, maxLength: 2 }), (plan, [calls, gb]) => {
        const usage = Object.fromEntries(plan.charges.map((c) => [c.meter, c.meter === 'calls' ? calls! : gb!]));
        const segment = { planCode: plan.id, start: t0, end: t0 + HOUR };
        const { lines, total } = priceSegments({
          period: { start: t0, end: t0 + HOUR },
          segments: [{ segment, plan, usage }],
          cumulative: new Set(meters),
        });
        assert.deepEqual(
          lines,
          pricePlan(plan, usage).lines.map((l) => ({ ...l, segment: null })),
        );
        assert.equal(total.toFixed(2), pricePlan(plan, usage).totals.total);
      }),
      { numRuns: 200 },
    );
  });

  test('a shared ladder continues across segments on the same tiers: the split period costs what the whole would', () => {
    const a: CatalogPlan = { id: 'a', currency: 'USD', charges: [{ meter: 'calls', model: 'graduated', tiers }] };
    const b: CatalogPlan = { ...a, id: 'b', base_fee: '0.00' };
    fc.assert(
      fc.property(quantity, quantity, fc.integer({ min: 1, max: HOUR - 1 }), (q1, q2, cut) => {
        const { total } = priceSegments({
          period: { start: 0, end: HOUR },
          segments: [
            { segment: { planCode: 'a', start: 0, end: cut }, plan: a, usage: { calls: q1 } },
            { segment: { planCode: 'b', start: cut, end: HOUR }, plan: b, usage: { calls: q2 } },
          ],
          cumulative: new Set(['calls']),
        });
        const whole = new Decimal(pricePlan(a, { calls: new Decimal(q1).plus(q2).toFixed() }).lines[0]!.exact_amount);
        // Two lines each rounded once: within one cent of the whole, rounded once.
        assert.ok(total.minus(whole).abs().lte('0.01'), `${total.toFixed()} vs ${whole.toFixed()}`);
      }),
      { numRuns: 200 },
    );
  });
});

/** The spans an invoice bills usage for: its segments, or its whole period when it is not split. */
function planSegmentsOf(invoice: Invoice): Array<{ start: number; end: number }> {
  const own = invoice.lines.filter((l) => l.type !== 'adjustment');
  if (own.length === 0) return [];
  const spans = new Map<string, { start: number; end: number }>();
  for (const line of own) {
    const span = line.segment ? { start: Date.parse(line.segment.start), end: Date.parse(line.segment.end) } : invoice.period;
    spans.set(`${span.start}/${span.end}`, span);
  }
  return [...spans.values()];
}
