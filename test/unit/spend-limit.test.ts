import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Decimal } from '../../src/domain/money';
import { PricePlanSchema, type PricePlan } from '../../src/domain/pricing';
import type { LimitState } from '../../src/domain/quota-policy-schema';
import { evaluateSpendLimit, nextSpendTarget } from '../../src/domain/spend-limit';
import { SpendCapSchema } from '../../src/domain/spend-limit-schema';
import { spendOf, spendRunway } from '../../src/domain/spend-projection';

const planOf = (charges: unknown[], extra: Record<string, unknown> = {}): PricePlan =>
  PricePlanSchema.parse({ currency: 'USD', charges, ...extra });

const calls = { meter: 'calls', model: 'per_unit', unit_price: '0.01' };
const tokens = {
  meter: 'tokens',
  model: 'graduated',
  tiers: [
    { up_to: '1000', unit_price: '0.001' },
    { up_to: null, unit_price: '0.002' },
  ],
};

describe('spendOf (spend of usage lines)', () => {
  test('the rounded usage lines only: no base fee, no minimum-commitment true-up', () => {
    const plan = planOf([calls, tokens], { base_fee: '10', minimum_commitment: '100' });
    assert.equal(spendOf(plan, { calls: '500', tokens: '2000' }).toFixed(), '8');
    assert.equal(spendOf(plan, {}).toFixed(), '0');
  });
});

describe('spendRunway: the usage of each charged meter at which the spend reaches what is available', () => {
  const cases: Array<{
    name: string;
    plan: PricePlan;
    usage: Record<string, string>;
    available: string;
    runway: Record<string, string | null>;
  }> = [
    { name: 'per unit, nothing used', plan: planOf([calls]), usage: {}, available: '10', runway: { calls: '1000' } },
    { name: 'per unit, one unit short', plan: planOf([calls]), usage: { calls: '999' }, available: '10', runway: { calls: '1000' } },
    {
      name: 'per unit, at the cap: the current usage',
      plan: planOf([calls]),
      usage: { calls: '1000' },
      available: '10',
      runway: { calls: '1000' },
    },
    { name: 'per unit, past the cap', plan: planOf([calls]), usage: { calls: '1500' }, available: '10', runway: { calls: '1500' } },
    {
      // 249 × 0.004 = 0.996, billed 1.00: the line rounds as the invoice will.
      name: 'rounding to cents counts as billed',
      plan: planOf([{ meter: 'calls', model: 'per_unit', unit_price: '0.004' }]),
      usage: {},
      available: '1.00',
      runway: { calls: '249' },
    },
    {
      name: 'two meters: each given the other where it is (graduated into its second tier)',
      plan: planOf([calls, tokens]),
      usage: { calls: '500', tokens: '2000' },
      available: '10',
      runway: { calls: '700', tokens: '2998' },
    },
    {
      name: 'packages: reached when the third package starts',
      plan: planOf([{ meter: 'calls', model: 'package', package_size: '100', package_price: '1.00' }]),
      usage: { calls: '150' },
      available: '3',
      runway: { calls: '201' },
    },
    {
      name: 'a free meter never reaches it',
      plan: planOf([{ meter: 'calls', model: 'per_unit', unit_price: '0' }]),
      usage: { calls: '5' },
      available: '1',
      runway: { calls: null },
    },
    {
      name: 'fractional usage of a sum meter: the next whole unit that reaches it',
      plan: planOf([{ meter: 'gb', model: 'per_unit', unit_price: '1.00' }]),
      usage: { gb: '10.5' },
      available: '20',
      runway: { gb: '20' },
    },
    { name: 'nothing available: reached already', plan: planOf([calls]), usage: { calls: '3' }, available: '0', runway: { calls: '3' } },
  ];
  for (const c of cases) {
    test(c.name, () => assert.deepEqual(spendRunway(c.plan, c.usage, new Decimal(c.available)), c.runway));
  }

  test('at the runway the spend has reached what is available, one unit before it has not', () => {
    const plan = planOf([calls, tokens]);
    const usage = { calls: '123', tokens: '4567' };
    const available = new Decimal('25.37');
    for (const [meter, at] of Object.entries(spendRunway(plan, usage, available))) {
      assert.ok(spendOf(plan, { ...usage, [meter]: at! }).gte(available), `${meter} at ${at}`);
      assert.ok(spendOf(plan, { ...usage, [meter]: new Decimal(at!).minus(1).toFixed() }).lt(available), `${meter} below ${at}`);
    }
  });
});

describe('evaluateSpendLimit: the hard-limit state machine on money', () => {
  const t0 = new Date('2026-03-01T12:00:00.000Z');
  const later = (ms: number) => new Date(t0.getTime() + ms);
  const HOUR = 3_600_000;
  const ok: LimitState = { status: 'ok' };
  const cases: Array<{
    name: string;
    available: string | null;
    grace?: string;
    spent: string;
    state: LimitState;
    now: Date;
    next: LimitState;
  }> = [
    { name: 'no limit', available: null, spent: '1000000', state: ok, now: t0, next: ok },
    { name: 'below the cap', available: '10.00', spent: '9.99', state: ok, now: t0, next: ok },
    {
      name: 'at the cap without grace: blocked at once',
      available: '10.00',
      spent: '10.00',
      state: ok,
      now: t0,
      next: { status: 'blocked', over_since: t0.toISOString(), blocked_since: t0.toISOString() },
    },
    {
      name: 'at the cap with a grace period: in grace',
      available: '10.00',
      grace: 'PT1H',
      spent: '10.00',
      state: ok,
      now: t0,
      next: { status: 'over_limit_in_grace', over_since: t0.toISOString(), grace_ends_at: later(HOUR).toISOString() },
    },
    {
      name: 'grace over: blocked',
      available: '10.00',
      grace: 'PT1H',
      spent: '10.50',
      state: { status: 'over_limit_in_grace', over_since: t0.toISOString(), grace_ends_at: later(HOUR).toISOString() },
      now: later(HOUR),
      next: { status: 'blocked', over_since: t0.toISOString(), blocked_since: later(HOUR).toISOString() },
    },
    {
      name: 'cap raised above the spend: unblocked',
      available: '20.00',
      spent: '10.50',
      state: { status: 'blocked', over_since: t0.toISOString(), blocked_since: t0.toISOString() },
      now: later(HOUR),
      next: ok,
    },
    {
      name: 'cap removed: unblocked',
      available: null,
      spent: '10.50',
      state: { status: 'blocked', over_since: t0.toISOString(), blocked_since: t0.toISOString() },
      now: later(HOUR),
      next: ok,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const limit = { available: c.available, ...(c.grace ? { gracePeriod: c.grace } : {}) };
      assert.deepEqual(evaluateSpendLimit(limit, { spent: c.spent, state: c.state, notified: [] }, c.now).state, c.next);
    });
  }
});

describe('evaluateSpendLimit: soft thresholds, percent of what is available', () => {
  const now = new Date('2026-03-01T12:00:00.000Z');
  const cases: Array<{
    name: string;
    available: string | null;
    spent: string;
    notified: string[];
    crossed: Array<{ key: string; amount: string }>;
  }> = [
    { name: 'below every threshold', available: '10.00', spent: '4.99', notified: [], crossed: [] },
    { name: 'at 50% exactly', available: '10.00', spent: '5.00', notified: [], crossed: [{ key: '50%', amount: '5' }] },
    {
      name: 'past two at once, lowest first',
      available: '10.00',
      spent: '9.50',
      notified: [],
      crossed: [
        { key: '50%', amount: '5' },
        { key: '90%', amount: '9' },
      ],
    },
    { name: 'already notified: not again', available: '10.00', spent: '9.50', notified: ['50%'], crossed: [{ key: '90%', amount: '9' }] },
    { name: 'no limit, no notice', available: null, spent: '1000', notified: [], crossed: [] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const limit = { available: c.available, softThresholds: [90, 50] };
      assert.deepEqual(
        evaluateSpendLimit(limit, { spent: c.spent, state: { status: 'ok' }, notified: c.notified }, now).newlyCrossed,
        c.crossed,
      );
    });
  }
});

describe('nextSpendTarget: where the workflow decides next', () => {
  const cases: Array<[string, string, string[], string]> = [
    ['nothing spent: the lowest threshold', '0', [], '5'],
    ['past 50%: the next threshold', '5.00', ['50%'], '8'],
    ['past 50% but not notified yet: still the next above the spend', '5.00', [], '8'],
    ['every threshold notified: the cap', '9.00', ['50%', '80%'], '10'],
    ['spend at the cap: the cap', '10.00', ['50%', '80%'], '10'],
  ];
  for (const [name, spent, notified, target] of cases) {
    test(name, () => assert.equal(nextSpendTarget(new Decimal('10'), new Decimal(spent), [80, 50], notified).toFixed(), target));
  }
});

describe('SpendCapSchema', () => {
  test('an amount, and optionally a grace period', () => {
    assert.deepEqual(SpendCapSchema.parse({ amount: '250.00' }), { amount: '250.00' });
    assert.deepEqual(SpendCapSchema.parse({ amount: '0', grace_period: 'PT1H' }), { amount: '0', grace_period: 'PT1H' });
  });
  const refused: Array<[string, unknown, RegExp]> = [
    ['a JSON number', { amount: 250 }, /decimal string/],
    ['a negative amount', { amount: '-1' }, /must not be negative/],
    ['no amount', {}, /is required/],
    ['an unknown key', { amount: '1', soft: true }, /soft/],
    ['a grace period that is no ISO 8601 duration', { amount: '1', grace_period: 'an hour' }, /./],
    ['a threshold above 100%', { amount: '1', soft_thresholds: [{ percent: 120 }] }, /at most 100/],
    ['a threshold twice', { amount: '1', soft_thresholds: [{ percent: 80 }, { percent: 80 }] }, /duplicates 80%/],
  ];
  for (const [name, input, message] of refused) {
    test(`refuses ${name}`, () => {
      const parsed = SpendCapSchema.safeParse(input);
      assert.equal(parsed.success, false);
      assert.match(JSON.stringify(parsed.error!.issues), message);
    });
  }
});
