import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { interimBilledLine, interimUsageLines, totalOf } from '../../src/domain/interim-billing';
import { lateUsageAdjustments, type BilledLine } from '../../src/domain/invoice-adjustments';
import { Decimal, formatMoney } from '../../src/domain/money';
import { planSchema } from '../../src/domain/plan';
import { pricePlan } from '../../src/domain/pricing/price-plan';
import { compareInvoice } from '../../src/domain/reconciliation';
import { spendOf, usageToReach } from '../../src/domain/spend-projection';
import { nextThreshold, thresholdReached } from '../../src/domain/spend-thresholds';
import { SpendThresholdsSchema, type SpendThresholds } from '../../src/domain/spend-thresholds-schema';

/*
 * Progressive billing's pure parts: which threshold priced usage reached, the interim deduction,
 * and the promise that interim invoices plus the period invoice add up to the period's full price
 * to the cent, however many interim invoices and wherever they were cut.
 */

// 5.00 base, a minimum of 20.00, graduated calls (100 at 0.015, then 0.0125: sub-cent prices, so lines round), per-unit GB at 0.333.
const plan = planSchema({ knownMeters: new Set(['api_calls', 'storage_gb']) }).parse({
  id: 'prog',
  name: 'Progressive',
  currency: 'USD',
  base_fee: '5.00',
  minimum_commitment: '20.00',
  charges: [
    {
      meter: 'api_calls',
      model: 'graduated',
      tiers: [
        { up_to: '100', unit_price: '0.015' },
        { up_to: null, unit_price: '0.0125' },
      ],
    },
    { meter: 'storage_gb', model: 'per_unit', unit_price: '0.333' },
  ],
  interval: { kind: 'calendar_month' },
});
const period = { start: '2026-01-01T00:00:00.000Z', end: '2026-02-01T00:00:00.000Z' };

const thresholds = (amounts: string[], every: string | null = null): SpendThresholds => ({ amounts, every });
const text = (d: Decimal | null) => d?.toFixed() ?? null;

describe('spend thresholds', () => {
  const cases: Array<{ name: string; t: SpendThresholds; spend: string; reached: string | null; next: string | null }> = [
    { name: 'nothing spent', t: thresholds(['500']), spend: '0', reached: null, next: '500' },
    { name: 'one cent below', t: thresholds(['500']), spend: '499.99', reached: null, next: '500' },
    { name: 'exactly at it (reaching counts)', t: thresholds(['500']), spend: '500', reached: '500', next: null },
    { name: 'one cent above', t: thresholds(['500', '2000']), spend: '500.01', reached: '500', next: '2000' },
    { name: 'jumped over two', t: thresholds(['500', '1000', '2000']), spend: '1500', reached: '1000', next: '2000' },
    { name: 'every: none reached', t: thresholds([], '500'), spend: '0', reached: null, next: '500' },
    { name: 'every: at a multiple', t: thresholds([], '500'), spend: '1000', reached: '1000', next: '1500' },
    { name: 'every: fractional step', t: thresholds([], '0.5'), spend: '1.25', reached: '1', next: '1.5' },
    { name: 'both: the nearer wins', t: thresholds(['750'], '500'), spend: '600', reached: '500', next: '750' },
    { name: 'both: past the list', t: thresholds(['750'], '500'), spend: '800', reached: '750', next: '1000' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(text(thresholdReached(c.t, new Decimal(c.spend))), c.reached);
      assert.equal(text(nextThreshold(c.t, new Decimal(c.spend))), c.next);
    });
  }

  test('the schema refuses zero, negatives, numbers and exponents, and defaults to none', () => {
    assert.deepEqual(SpendThresholdsSchema.parse({}), { amounts: [], every: null });
    for (const bad of [{ amounts: ['0'] }, { amounts: ['-1'] }, { amounts: [500] }, { every: '1e3' }, { every: '0.00' }, { other: 1 }]) {
      assert.equal(SpendThresholdsSchema.safeParse(bad).success, false, JSON.stringify(bad));
    }
  });

  test('priced usage is the usage lines only: no base fee, no minimum commitment', () => {
    // 100 × 0.015 + 20 × 0.0125 = 1.75; 3 GB × 0.333 = 0.999 → 1.00.
    assert.equal(spendOf(plan, { api_calls: '120', storage_gb: '3' }).toFixed(), '2.75');
  });
});

describe('spend decision points (usage at which the next threshold is reached)', () => {
  test('per meter, the highest usage still below the target, with the others where they are', () => {
    const usage = { api_calls: '50', storage_gb: '2' };
    const now = spendOf(plan, usage);
    const gap = new Decimal('10.00').minus(now);
    const points = usageToReach(plan, usage, gap);
    for (const meter of ['api_calls', 'storage_gb']) {
      const point = new Decimal(points[meter]!);
      const at = (q: Decimal) => spendOf(plan, { ...usage, [meter]: q.toFixed() });
      assert.ok(at(point).lt('10.00'), `${meter} at ${point.toFixed()} is still below`);
      assert.ok(at(point.plus('0.000002')).gte('10.00'), `${meter} just above ${point.toFixed()} reaches it`);
    }
    // 100 calls at 0.015 = 1.50, then 0.0125 each: 10.00 − 0.67 (2 GB) = 9.33 → 100 + 7.83/0.0125 = 726.4 calls, rounding to the cent.
    assert.ok(new Decimal(points.api_calls!).gte(725) && new Decimal(points.api_calls!).lte(727), points.api_calls!);
  });

  test('a meter that cannot close the gap alone has none', () => {
    const free = planSchema({ knownMeters: new Set(['api_calls']) }).parse({
      id: 'free',
      name: 'Free',
      currency: 'USD',
      charges: [{ meter: 'api_calls', model: 'per_unit', unit_price: '0' }],
      interval: { kind: 'calendar_month' },
    });
    assert.deepEqual(usageToReach(free, { api_calls: '10' }, new Decimal(1)), { api_calls: null });
  });
});

describe('the interim deduction', () => {
  test('no earlier interim invoice: no line', () => {
    assert.equal(interimBilledLine('USD', []), null);
  });

  test('earlier interim invoices: one negative line of their totals', () => {
    assert.deepEqual(
      interimBilledLine('USD', [
        { sequence: 2, total: '250.10' },
        { sequence: 1, total: '500.05' },
      ]),
      {
        type: 'interim_billed',
        meter: null,
        quantity: null,
        description: 'Billed on interim invoices #1, #2 of this period',
        amount: '-750.15',
      },
    );
    assert.equal(interimBilledLine('JPY', [{ sequence: 1, total: '0' }])!.amount, '0');
  });

  /** Interim invoices cut at increasing usage, then the period invoice, exactly as the builder composes them. */
  function billProgressively(cuts: Array<{ api_calls: string; storage_gb: string }>, final: { api_calls: string; storage_gb: string }) {
    const interims: Array<{ sequence: number; total: string }> = [];
    for (const usage of cuts) {
      const lines: Array<{ amount: string }> = interimUsageLines(pricePlan(plan, usage).lines);
      const deduction = interimBilledLine('USD', interims);
      if (deduction) lines.push(deduction);
      interims.push({ sequence: interims.length + 1, total: formatMoney(totalOf(lines), 'USD') });
    }
    const full = pricePlan(plan, final);
    const deduction = interimBilledLine('USD', interims);
    const periodTotal = formatMoney(totalOf([...full.lines, ...(deduction ? [deduction] : [])]), 'USD');
    return { interims, periodTotal, full: full.totals.total };
  }

  test('two interim invoices, then the period: graduated tiers continue and the sum is the full price', () => {
    const { interims, periodTotal, full } = billProgressively(
      [
        { api_calls: '80', storage_gb: '1' }, // 1.20 + 0.33 = 1.53
        { api_calls: '1000', storage_gb: '7' }, // 1.50 + 11.25 + 2.33 = 15.08, less 1.53
      ],
      { api_calls: '1801', storage_gb: '9' },
    );
    assert.deepEqual(
      interims.map((i) => i.total),
      ['1.53', '13.55'],
    );
    // Full: 5.00 + (1.50 + 21.2625 → 22.76) + (2.997 → 3.00) = 30.76, over the 20.00 minimum; less 15.08 billed.
    assert.equal(full, '30.76');
    assert.equal(periodTotal, '15.68');
    assert.equal(interims.reduce((sum, i) => sum.plus(i.total), new Decimal(periodTotal)).toFixed(2), full);
  });

  test('property: whatever the cuts, interim invoices plus the period invoice equal the full price to the cent', () => {
    const quantity = fc.integer({ min: 0, max: 50_000 }).map(String);
    const fraction = fc.integer({ min: 0, max: 1_000_000 }).map((n) => new Decimal(n).div(1000).toFixed());
    fc.assert(
      fc.property(fc.array(fc.tuple(quantity, fraction), { maxLength: 6 }), fc.tuple(quantity, fraction), (steps, extra) => {
        // Usage only grows within a period: cuts are running sums, the period end adds a last step.
        let calls = new Decimal(0);
        let gb = new Decimal(0);
        const cuts = steps.map(([c, g]) => {
          calls = calls.plus(c);
          gb = gb.plus(g);
          return { api_calls: calls.toFixed(), storage_gb: gb.toFixed() };
        });
        const final = { api_calls: calls.plus(extra[0]).toFixed(), storage_gb: gb.plus(extra[1]).toFixed() };
        const { interims, periodTotal, full } = billProgressively(cuts, final);
        const billed = interims.reduce((sum, i) => sum.plus(i.total), new Decimal(periodTotal));
        assert.equal(billed.toFixed(2), full);
      }),
      { numRuns: 300 },
    );
  });

  test('late usage of a period with interim invoices adjusts only the usage: the deduction never changes', () => {
    const billed: BilledLine[] = [
      ...pricePlan(plan, { api_calls: '200', storage_gb: '0' }).lines,
      { ...interimBilledLine('USD', [{ sequence: 1, total: '1.50' }])! },
    ];
    const repriced = pricePlan(plan, { api_calls: '210', storage_gb: '0' }).lines;
    const drafts = lateUsageAdjustments({ currency: 'USD', period, billed, repriced });
    assert.deepEqual(
      drafts.map((d) => [d.meter, d.quantity, d.amount]),
      // 2.75 → 2.88 for the calls; the minimum-commitment true-up shrinks by as much.
      [
        ['api_calls', '10', '0.13'],
        [null, null, '-0.13'],
      ],
    );
  });
});

describe('reconciliation of a period with interim invoices', () => {
  const usage = { api_calls: '1000', storage_gb: '0' };
  const interim = { sequence: 1, total: '12.75' }; // 1.50 + 11.25 for the first 1000 calls
  const periodUsage = { api_calls: '1500', storage_gb: '0' };
  const periodLines = (): BilledLine[] => [...pricePlan(plan, periodUsage).lines, interimBilledLine('USD', [interim])!];
  const base = { plan, laterAdjustments: [], credited: '0', adjustable: false };

  test('the period invoice (full price less the interim invoice) and the interim invoice itself match', () => {
    const lines = periodLines();
    const period_ = {
      currency: 'USD' as const,
      kind: 'period' as const,
      period,
      usage: periodUsage,
      total: totalOf(lines).toFixed(2),
      lines,
    };
    assert.deepEqual(compareInvoice({ ...base, invoice: period_, recomputed: periodUsage, interimBilled: [interim] }), []);
    const interimLines = interimUsageLines(pricePlan(plan, usage).lines);
    const interimInvoice = {
      currency: 'USD' as const,
      kind: 'interim' as const,
      period: { start: period.start, end: '2026-01-10T00:00:00.000Z' },
      usage,
      total: totalOf(interimLines).toFixed(2),
      lines: interimLines,
    };
    assert.equal(interimInvoice.total, interim.total);
    assert.deepEqual(compareInvoice({ ...base, invoice: interimInvoice, recomputed: usage, interimBilled: [] }), []);
  });

  test('a period invoice that forgot to deduct an interim invoice is found: owed back to the customer', () => {
    const lines = pricePlan(plan, periodUsage).lines as BilledLine[];
    const invoice = {
      currency: 'USD' as const,
      kind: 'period' as const,
      period,
      usage: periodUsage,
      total: totalOf(lines).toFixed(2),
      lines,
    };
    const found = compareInvoice({ ...base, invoice, recomputed: periodUsage, interimBilled: [interim] });
    assert.deepEqual(
      found.map((f) => [f.kind, f.correction]),
      [['amount_mismatch', '12.75']],
    );
  });
});
