import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Decimal } from '../../src/domain/money';
import { changeDirection } from '../../src/domain/plan-change-direction';
import { planAt, planSegments, segmentOf } from '../../src/domain/plan-segments';
import type { PricePlan } from '../../src/domain/pricing';
import { prorateFixed } from '../../src/domain/proration';
import { priceSegments } from '../../src/domain/segment-pricing';

const H = 3_600_000;
const timeline = {
  initialPlan: 'a',
  changes: [
    { at: 10 * H, toPlan: 'b' },
    { at: 20 * H, toPlan: 'c' },
    { at: 20 * H, toPlan: 'a' }, // same instant: the last one wins, and a–a neighbours merge
    { at: 30 * H, toPlan: 'b' }, // at the end of [0, 30h): next period
  ],
};

describe('plan segments', () => {
  test('cut at the changes inside the span; an instant on a change belongs to the new plan', () => {
    assert.deepEqual(planSegments(timeline, 0, 30 * H), [
      { planCode: 'a', start: 0, end: 10 * H },
      { planCode: 'b', start: 10 * H, end: 20 * H },
      { planCode: 'a', start: 20 * H, end: 30 * H },
    ]);
    assert.deepEqual(planSegments(timeline, 30 * H, 40 * H), [{ planCode: 'b', start: 30 * H, end: 40 * H }]);
    assert.deepEqual(planSegments(timeline, 5 * H, 5 * H), []);
    const segments = planSegments(timeline, 0, 30 * H);
    assert.equal(segmentOf(segments, 10 * H)?.planCode, 'b');
    assert.equal(segmentOf(segments, 10 * H - 1)?.planCode, 'a');
    assert.equal(segmentOf(segments, 30 * H), undefined);
    assert.equal(planAt(timeline, 20 * H), 'a');
  });
});

describe('proration of fixed amounts', () => {
  const period = { start: 0, end: 30 * H };
  const cases = [
    { name: 'whole period', proration: undefined, segment: { start: 0, end: 30 * H }, amount: '30.00', expected: '30' },
    { name: 'a third, prorated by default', proration: undefined, segment: { start: 0, end: 10 * H }, amount: '30.00', expected: '10' },
    { name: 'one millisecond', proration: 'prorated', segment: { start: 0, end: 1 }, amount: '108.00', expected: '0.000001' },
    { name: 'full', proration: 'full', segment: { start: 20 * H, end: 21 * H }, amount: '30.00', expected: '30' },
    { name: 'none', proration: 'none', segment: { start: 0, end: 29 * H }, amount: '30.00', expected: '0' },
    { name: 'none, whole period', proration: 'none', segment: { start: 0, end: 30 * H }, amount: '30.00', expected: '30' },
    { name: 'empty', proration: 'full', segment: { start: H, end: H }, amount: '30.00', expected: '0' },
    // 0.015 × 1/3 is exactly 0.005: multiplied before divided, so it stays a tie, not 0.00499…
    { name: 'a true tie stays exact', proration: 'prorated', segment: { start: 0, end: 10 * H }, amount: '0.015', expected: '0.005' },
  ] as const;
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(prorateFixed(new Decimal(c.amount), c.proration, c.segment, period).toFixed(), c.expected);
    });
  }
});

describe('segment pricing, worked examples (README)', () => {
  const day = 24 * H;
  const period = { start: 0, end: 30 * day };
  const starter: PricePlan & { id: string } = {
    id: 'starter',
    currency: 'USD',
    base_fee: '30.00',
    charges: [
      {
        meter: 'calls',
        model: 'graduated',
        tiers: [
          { up_to: '100', unit_price: '1.00' },
          { up_to: null, unit_price: '0.50' },
        ],
      },
    ],
  };
  const growth: PricePlan & { id: string } = {
    id: 'growth',
    currency: 'USD',
    base_fee: '90.00',
    charges: [
      {
        meter: 'calls',
        model: 'graduated',
        tiers: [
          { up_to: '100', unit_price: '0.80' },
          { up_to: null, unit_price: '0.40' },
        ],
      },
    ],
  };
  const upgradeOnDay10 = (to: PricePlan & { id: string }) =>
    priceSegments({
      period,
      segments: [
        { segment: { planCode: 'starter', start: 0, end: 10 * day }, plan: starter, usage: { calls: '150' } },
        { segment: { planCode: to.id, start: 10 * day, end: 30 * day }, plan: to, usage: { calls: '100' } },
      ],
      cumulative: new Set(['calls']),
    });

  test('upgrade on day 10 of 30, shared ladder: base fees 10.00 + 60.00, usage 125.00 + 40.00', () => {
    const { lines, total } = upgradeOnDay10(growth);
    assert.deepEqual(
      lines.map((l) => [l.segment?.planCode, l.type, l.amount]),
      [
        ['starter', 'base_fee', '10.00'],
        ['starter', 'usage', '125.00'],
        ['growth', 'base_fee', '60.00'],
        ['growth', 'usage', '40.00'],
      ],
    );
    assert.equal(total.toFixed(2), '235.00');
    assert.deepEqual(lines[0]!.segment, { planCode: 'starter', start: '1970-01-01T00:00:00.000Z', end: '1970-01-11T00:00:00.000Z' });
    // The continued line shows the whole ladder and, negated, the part used before.
    assert.deepEqual(
      lines[3]!.breakdown.map((r) => [r.units, r.unit_price, r.amount]),
      [
        ['100', '0.8', '80'],
        ['150', '0.4', '60'],
        ['-100', '0.8', '-80'],
        ['-50', '0.4', '-20'],
      ],
    );
  });

  test('the same with per_segment tiers: the new plan starts its ladder at zero, 80.00', () => {
    const { lines } = upgradeOnDay10({ ...growth, tiers_across_segments: 'per_segment' });
    assert.equal(lines[3]!.amount, '80.00');
  });

  test('full and none: the whole base fee, or none of it, for the part', () => {
    assert.equal(upgradeOnDay10({ ...growth, proration: 'full' }).lines[2]!.amount, '90.00');
    assert.equal(upgradeOnDay10({ ...growth, proration: 'none' }).lines[2]!.amount, '0.00');
  });

  test('a prorated minimum commitment is topped up per segment', () => {
    const committed = { ...growth, minimum_commitment: '150.00' };
    const { lines } = upgradeOnDay10(committed);
    // 150 × 20/30 = 100.00 committed for the segment; 60.00 + 40.00 billed: no true-up. With 10 calls it would be.
    assert.equal(lines.filter((l) => l.type === 'minimum_commitment_true_up').length, 0);
    const small = priceSegments({
      period,
      segments: [{ segment: { planCode: 'growth', start: 10 * day, end: 30 * day }, plan: committed, usage: { calls: '10' } }],
      cumulative: new Set(['calls']),
    });
    // One segment cut short by a cancellation: 60.00 + 8.00 billed, 100.00 committed → 32.00.
    assert.deepEqual(
      small.lines.map((l) => [l.type, l.amount, l.segment]),
      [
        ['base_fee', '60.00', null],
        ['usage', '8.00', null],
        ['minimum_commitment_true_up', '32.00', null],
      ],
    );
    assert.match(small.lines[2]!.description, /Minimum commitment 100\.00 USD \(prorated: .*66\.6667% of the period\)/);
  });

  test('a start on day 10 after a billing anchor: base fee 30.00 × 20/30 = 20.00, usage from the start', () => {
    // The subscription's first period is cut at its start, as a cancellation cuts the end (src/domain/billing-schedule.ts).
    const timeline = { initialPlan: 'starter', changes: [] };
    const segments = planSegments(timeline, 10 * day, 30 * day);
    assert.deepEqual(segments, [{ planCode: 'starter', start: 10 * day, end: 30 * day }]);
    const firstPeriod = (plan: PricePlan & { id: string }) =>
      priceSegments({ period, segments: [{ segment: segments[0]!, plan, usage: { calls: '120' } }], cumulative: new Set(['calls']) });
    const { lines, total } = firstPeriod(starter);
    assert.deepEqual(
      lines.map((l) => [l.type, l.amount]),
      [
        ['base_fee', '20.00'],
        ['usage', '110.00'],
      ],
    );
    assert.equal(total.toFixed(2), '130.00');
    assert.match(lines[0]!.description, /prorated: 1970-01-11T00:00:00\.000Z – 1970-01-31T00:00:00\.000Z, 66\.6667% of the period/);
    assert.equal(firstPeriod({ ...starter, proration: 'full' }).lines[0]!.amount, '30.00');
    assert.equal(firstPeriod({ ...starter, proration: 'none' }).lines[0]!.amount, '0.00');
  });

  test('a downgrade at the period end: the period on growth in full (230.00), the next on starter (140.00)', () => {
    const timeline = { initialPlan: 'growth', changes: [{ at: 30 * day, toPlan: 'starter' }] };
    const [first] = planSegments(timeline, 0, 30 * day);
    const [second] = planSegments(timeline, 30 * day, 60 * day);
    assert.deepEqual(
      [first, second],
      [
        { planCode: 'growth', start: 0, end: 30 * day },
        { planCode: 'starter', start: 30 * day, end: 60 * day },
      ],
    );
    const before = priceSegments({
      period,
      segments: [{ segment: first!, plan: growth, usage: { calls: '250' } }],
      cumulative: new Set(['calls']),
    });
    assert.deepEqual(
      before.lines.map((l) => [l.type, l.amount, l.segment]),
      [
        ['base_fee', '90.00', null],
        ['usage', '140.00', null],
      ],
    );
    const after = priceSegments({
      period: { start: 30 * day, end: 60 * day },
      segments: [{ segment: second!, plan: starter, usage: { calls: '120' } }],
      cumulative: new Set(['calls']),
    });
    assert.deepEqual(
      after.lines.map((l) => [l.type, l.amount, l.segment]),
      [
        ['base_fee', '30.00', null],
        ['usage', '110.00', null],
      ],
    );
    assert.deepEqual([before.total.toFixed(2), after.total.toFixed(2)], ['230.00', '140.00']);
  });
});

describe('volume tiers across segments, worked example (README)', () => {
  const day = 24 * H;
  const period = { start: 0, end: 30 * day };
  const volume = (id: string, base_fee: string, below: string, above: string): PricePlan & { id: string } => ({
    id,
    currency: 'USD',
    base_fee,
    charges: [
      {
        meter: 'calls',
        model: 'volume',
        tiers: [
          { up_to: '100', unit_price: below },
          { up_to: null, unit_price: above },
        ],
      },
    ],
  });
  const basic = volume('basic', '30.00', '1.00', '0.50');
  const pro = volume('pro', '90.00', '0.90', '0.40');
  const upgradeOnDay10 = (to: PricePlan & { id: string }) =>
    priceSegments({
      period,
      segments: [
        { segment: { planCode: 'basic', start: 0, end: 10 * day }, plan: basic, usage: { calls: '80' } },
        { segment: { planCode: 'pro', start: 10 * day, end: 30 * day }, plan: to, usage: { calls: '50' } },
      ],
      cumulative: new Set(['calls']),
    });

  test('shared ladder: 130 calls reach the cheaper tier, so the later line is negative (130 × 0.40 − 80 × 0.90 = −20.00)', () => {
    const { lines, total } = upgradeOnDay10(pro);
    assert.deepEqual(
      lines.map((l) => [l.segment?.planCode, l.type, l.amount]),
      [
        ['basic', 'base_fee', '10.00'],
        ['basic', 'usage', '80.00'],
        ['pro', 'base_fee', '60.00'],
        ['pro', 'usage', '-20.00'],
      ],
    );
    assert.deepEqual(
      lines[3]!.breakdown.map((r) => [r.units, r.unit_price, r.amount]),
      [
        ['130', '0.4', '52'],
        ['-80', '0.9', '-72'],
      ],
    );
    assert.equal(total.toFixed(2), '130.00');
  });

  test('per_segment: the pro ladder starts at zero, 50 × 0.90 = 45.00', () => {
    const { lines, total } = upgradeOnDay10({ ...pro, tiers_across_segments: 'per_segment' });
    assert.equal(lines[3]!.amount, '45.00');
    assert.equal(total.toFixed(2), '195.00');
  });
});

describe('upgrade or downgrade', () => {
  const plan = (base_fee: string | undefined, unit_price: string): PricePlan => ({
    currency: 'USD',
    ...(base_fee === undefined ? {} : { base_fee }),
    charges: [{ meter: 'calls', model: 'per_unit', unit_price }],
  });
  const cases: Array<{ name: string; from: PricePlan; to: PricePlan; usage: Record<string, string>; expected: string }> = [
    { name: 'higher base fee', from: plan('10.00', '1'), to: plan('20.00', '0.1'), usage: { calls: '1000' }, expected: 'upgrade' },
    { name: 'lower base fee', from: plan('20.00', '0.1'), to: plan('10.00', '1'), usage: { calls: '1000' }, expected: 'downgrade' },
    {
      name: 'same fee, usage priced higher',
      from: plan(undefined, '0.1'),
      to: plan('0', '0.2'),
      usage: { calls: '10' },
      expected: 'upgrade',
    },
    {
      name: 'same fee, usage priced lower',
      from: plan('5.00', '0.2'),
      to: plan('5.00', '0.1'),
      usage: { calls: '10' },
      expected: 'downgrade',
    },
    {
      name: 'no usage yet: a tie counts as an upgrade',
      from: plan('5.00', '0.2'),
      to: plan('5.00', '0.1'),
      usage: {},
      expected: 'upgrade',
    },
    {
      name: 'a meter only one plan charges',
      from: plan('5.00', '0.2'),
      to: { currency: 'USD', base_fee: '5.00', charges: [{ meter: 'gb', model: 'per_unit', unit_price: '1' }] },
      usage: { calls: '10', gb: '1' },
      expected: 'downgrade',
    },
  ];
  for (const c of cases) {
    test(c.name, () => assert.equal(changeDirection(c.from, c.to, c.usage), c.expected));
  }
});
