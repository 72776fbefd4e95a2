import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lateUsageAdjustments, type BilledLine } from '../../src/domain/invoice-adjustments';
import { pricePlan } from '../../src/domain/pricing/price-plan';
import type { PricePlan } from '../../src/domain/pricing/schema';
import { priceSegments } from '../../src/domain/segment-pricing';

const period = { start: '2026-01-01T00:00:00.000Z', end: '2026-02-01T00:00:00.000Z' };
const plan: PricePlan = {
  currency: 'USD',
  base_fee: '10.00',
  minimum_commitment: '20.00',
  charges: [
    {
      meter: 'api_calls',
      model: 'graduated',
      tiers: [
        { up_to: '10', unit_price: '0.333' },
        { up_to: null, unit_price: '0.111' },
      ],
    },
    { meter: 'storage', model: 'per_unit', unit_price: '0.5' },
  ],
};
const billedLines = (usage: Record<string, string>): BilledLine[] => pricePlan(plan, usage).lines;
const adjust = (billed: BilledLine[], usage: Record<string, string>) =>
  lateUsageAdjustments({ currency: 'USD', period, billed, repriced: pricePlan(plan, usage).lines });

describe('late usage adjustments', () => {
  test('no late usage: no adjustment', () => {
    assert.deepEqual(adjust(billedLines({ api_calls: '12', storage: '3' }), { api_calls: '12', storage: '3' }), []);
  });

  test('late usage on a tiered meter is billed at the tier it falls in, as the difference of rounded amounts', () => {
    // Billed: 12 calls = 10 × 0.333 + 2 × 0.111 = 3.552 → 3.55. Now 15: 3.33 + 5 × 0.111 = 3.885 → 3.89.
    const drafts = adjust(billedLines({ api_calls: '12', storage: '30' }), { api_calls: '15', storage: '30' });
    assert.deepEqual(drafts, [
      {
        meter: 'api_calls',
        quantity: '3',
        amount: '0.34',
        description: `Late usage for ${period.start} – ${period.end} (api_calls: 3 units)`,
        segment: null,
      },
    ]);
  });

  test('adjustments already billed count: a second late batch is adjusted only by what is new, with no drift', () => {
    const original = billedLines({ api_calls: '12', storage: '30' });
    const first = adjust(original, { api_calls: '15', storage: '30' });
    const asBilled = first.map((d) => ({ type: 'adjustment' as const, meter: d.meter, quantity: d.quantity, amount: d.amount }));
    const second = adjust([...original, ...asBilled], { api_calls: '16', storage: '30' });
    // 16 calls: 3.33 + 0.666 = 3.996 → 4.00; billed so far 3.55 + 0.34 = 3.89.
    assert.deepEqual(
      second.map((d) => [d.meter, d.quantity, d.amount]),
      [['api_calls', '1', '0.11']],
    );
    assert.deepEqual(
      adjust([...original, ...asBilled, { type: 'adjustment', meter: 'api_calls', quantity: '1', amount: '0.11' }], {
        api_calls: '16',
        storage: '30',
      }),
      [],
    );
  });

  test('late usage that lifts the period above the minimum commitment reverses the true-up it no longer needs', () => {
    // Billed: 10 + 0 + 1.00 (2 GB) = 11.00 → true-up 9.00. Late: 20 GB more → 10 + 11.00 = 21.00, no true-up.
    const drafts = adjust(billedLines({ api_calls: '0', storage: '2' }), { api_calls: '0', storage: '22' });
    assert.deepEqual(
      drafts.map((d) => [d.meter, d.quantity, d.amount]),
      [
        ['storage', '20', '10.00'],
        [null, null, '-9.00'],
      ],
    );
  });

  test('in a period split by a plan change, late usage adjusts the line of its own segment, with the segment named', () => {
    const cut = Date.parse('2026-01-16T00:00:00.000Z');
    const [start, end] = [Date.parse(period.start), Date.parse(period.end)];
    const pro = { ...plan, id: 'pro' };
    const lite = { ...plan, id: 'lite', base_fee: '4.00' };
    const priced = (before: string, after: string) =>
      priceSegments({
        period: { start, end },
        segments: [
          { segment: { planCode: 'lite', start, end: cut }, plan: lite, usage: { api_calls: before, storage: '30' } },
          { segment: { planCode: 'pro', start: cut, end }, plan: pro, usage: { api_calls: after, storage: '30' } },
        ],
        cumulative: new Set(['api_calls', 'storage']),
      }).lines;
    // Late calls fall after the upgrade: only the pro segment's line moves, though both segments bill api_calls.
    const drafts = lateUsageAdjustments({ currency: 'USD', period, billed: priced('4', '8'), repriced: priced('4', '11') });
    const segment = { planCode: 'pro', start: new Date(cut).toISOString(), end: period.end };
    // The shared ladder: pro continues at call 5. 8 calls there = 5 × 0.333 + 3 × 0.111; 11 = 5 × 0.333 + 6 × 0.111; +0.333.
    assert.deepEqual(
      drafts.map((d) => [d.meter, d.quantity, d.amount, d.segment]),
      [['api_calls', '3', '0.33', segment]],
    );
    assert.match(drafts[0]!.description, /segment on plan pro 2026-01-16T00:00:00.000Z – 2026-02-01T00:00:00.000Z/);
  });
});
