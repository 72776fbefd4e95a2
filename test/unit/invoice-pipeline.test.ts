import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { applyCredits, type GrantAvailable, type Settlement } from '../../src/domain/credit-drawdown';
import { CouponSchema, applyDiscounts, type Coupon, type CouponToApply } from '../../src/domain/discounts';
import { afterPricing, invoiceTotals, type PipelineLine } from '../../src/domain/invoice-pipeline';
import { Decimal, formatMoney, type Decimal as DecimalValue } from '../../src/domain/money';
import { pricePlan } from '../../src/domain/pricing';
import { compareDiscountsAndTaxes } from '../../src/domain/reconciliation';
import { TaxInputError, TaxRateSchema, applyTaxes, type TaxRateToApply } from '../../src/domain/taxes';

const coupon = (code: string, discount: Coupon['discount'], meters?: string[]): CouponToApply => ({
  applicationId: `app-${code}`,
  coupon: CouponSchema.parse({ code, name: code, discount, duration: { kind: 'forever' }, ...(meters ? { meters } : {}) }),
});
const pct = (code: string, percent_off: string, meters?: string[]) => coupon(code, { type: 'percentage', percent_off }, meters);
const off = (code: string, amount_off: string, meters?: string[]) =>
  coupon(code, { type: 'fixed_amount', amount_off, currency: 'USD' }, meters);
const rate = (id: string, percentage: string, inclusive = false, meter: string | null = null): TaxRateToApply => ({
  id,
  ...TaxRateSchema.parse({ code: id, name: id.toUpperCase(), percentage, inclusive, meter }),
});

const base = (amount: string): PipelineLine => ({ type: 'base_fee', meter: null, amount });
const usage = (meter: string, amount: string): PipelineLine => ({ type: 'usage', meter, amount });
const trueUp = (amount: string): PipelineLine => ({ type: 'minimum_commitment_true_up', meter: null, amount });

const run = (lines: PipelineLine[], coupons: CouponToApply[] = [], taxRates: TaxRateToApply[] = []) =>
  afterPricing({ currency: 'USD', rounding: 'half_up', lines, coupons, taxRates });

describe('discounts (worked table)', () => {
  const cases: { name: string; lines: PipelineLine[]; coupons: CouponToApply[]; discounts: [string | null, string][] }[] = [
    { name: 'no coupon', lines: [base('10.00')], coupons: [], discounts: [] },
    {
      name: '10 % of everything, per meter group',
      lines: [base('10.00'), usage('calls', '2.55')],
      coupons: [pct('TEN', '10')],
      discounts: [
        [null, '-1.00'],
        ['calls', '-0.26'],
      ],
    },
    {
      name: '100 % leaves zero, never below',
      lines: [base('10.00'), usage('calls', '2.50')],
      coupons: [pct('ALL', '100')],
      discounts: [
        [null, '-10.00'],
        ['calls', '-2.50'],
      ],
    },
    {
      name: 'fixed amount fills the groups in line order',
      lines: [base('3.00'), usage('calls', '5.00')],
      coupons: [off('FIVE', '5.00')],
      discounts: [
        [null, '-3.00'],
        ['calls', '-2.00'],
      ],
    },
    {
      name: 'fixed amount larger than the charges is capped',
      lines: [base('3.00')],
      coupons: [off('BIG', '50.00')],
      discounts: [[null, '-3.00']],
    },
    {
      name: 'limited to a meter',
      lines: [base('10.00'), usage('calls', '4.00'), usage('gb', '6.00')],
      coupons: [pct('GB', '50', ['gb'])],
      discounts: [['gb', '-3.00']],
    },
    {
      name: 'the true-up is discounted: the minimum is what counts before discounts',
      lines: [base('5.00'), usage('calls', '1.00'), trueUp('4.00')],
      coupons: [pct('HALF', '50')],
      discounts: [
        [null, '-4.50'],
        ['calls', '-0.50'],
      ],
    },
    {
      name: 'stacked coupons work on what the earlier left',
      lines: [base('10.00')],
      coupons: [off('FIVE', '5.00'), pct('HALF', '50')],
      discounts: [
        [null, '-5.00'],
        [null, '-2.50'],
      ],
    },
    {
      name: 'adjustments of earlier periods are not discounted',
      lines: [base('1.00'), { type: 'adjustment', meter: 'calls', amount: '7.00' }],
      coupons: [pct('ALL', '100')],
      discounts: [[null, '-1.00']],
    },
    {
      name: 'a fixed coupon in another currency does nothing',
      lines: [base('10.00')],
      coupons: [coupon('EUR5', { type: 'fixed_amount', amount_off: '5.00', currency: 'EUR' })],
      discounts: [],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const lines = applyDiscounts({ currency: 'USD', rounding: 'half_up', lines: c.lines, coupons: c.coupons });
      assert.deepEqual(
        lines.map((l) => [l.meter, l.amount]),
        c.discounts,
      );
    });
  }

  test('a coupon is refused with a clear message when its terms are wrong', () => {
    const parsed = CouponSchema.safeParse({
      code: 'X',
      name: 'x',
      discount: { type: 'percentage', percent_off: '150' },
      duration: { kind: 'once' },
    });
    assert.equal(parsed.success, false);
    assert.match(JSON.stringify(parsed.error!.issues), /at most 100/);
    const cents = CouponSchema.safeParse({
      code: 'X',
      name: 'x',
      discount: { type: 'fixed_amount', amount_off: '1.005', currency: 'USD' },
      duration: { kind: 'once' },
    });
    assert.match(JSON.stringify(cents.error!.issues), /more decimal places than USD/);
  });
});

describe('taxes (worked table)', () => {
  test('exclusive, two rates stacked simply on the net, each rounded once', () => {
    const taxes = applyTaxes({
      currency: 'USD',
      rounding: 'half_up',
      lines: [base('10.00'), usage('calls', '0.05')],
      rates: [rate('state', '6.25'), rate('city', '2.25')],
    });
    // 10.05 × 6.25 % = 0.628125 → 0.63; 10.05 × 2.25 % = 0.226125 → 0.23 (not 2.25 % of 10.05 + 0.63)
    assert.deepEqual(
      taxes.map((t) => [t.base, t.exactAmount, t.amount]),
      [
        ['10.05', '0.628125', '0.63'],
        ['10.05', '0.226125', '0.23'],
      ],
    );
  });

  test('a rate on one meter taxes that meter net of its discount', () => {
    const result = run(
      [base('10.00'), usage('gb', '8.00')],
      [pct('GB', '50', ['gb'])],
      [rate('vat', '20'), rate('gbtax', '10', false, 'gb')],
    );
    assert.deepEqual(
      result.taxes.map((t) => [t.meter, t.base, t.amount]),
      [
        [null, '14.00', '2.80'],
        ['gb', '4.00', '0.40'],
      ],
    );
    assert.deepEqual(result.totals, { net: '14.00', tax: '3.20', gross: '17.20' });
  });

  test('inclusive: tax extracted from the gross, the residue of rounding in the net', () => {
    // 10.00 contains 20 % VAT: 10 × 20 / 120 = 1.6666… → 1.67, net 8.33.
    const result = run([base('10.00')], [], [rate('vat', '20', true)]);
    assert.equal(result.taxes[0]!.amount, '1.67');
    assert.deepEqual(result.totals, { net: '8.33', tax: '1.67', gross: '10.00' });
  });

  test('inclusive, stacked: each rate extracted over the sum of the rates on that line', () => {
    // gb 11.50 contains 10 % + 5 %: net 10.00, taxes 1.00 and 0.50; the base fee 2.20 contains 10 % only: 0.20.
    const result = run([base('2.20'), usage('gb', '11.50')], [], [rate('vat', '10', true), rate('gb', '5', true, 'gb')]);
    assert.deepEqual(
      result.taxes.map((t) => t.amount),
      ['1.20', '0.50'],
    );
    assert.deepEqual(result.totals, { net: '12.00', tax: '1.70', gross: '13.70' });
  });

  test('mixing inclusive and exclusive rates is refused', () => {
    assert.throws(() => run([base('1.00')], [], [rate('a', '5'), rate('b', '5', true)]), TaxInputError);
  });

  test('JPY has no minor digits: each tax line is rounded to the yen', () => {
    const taxes = applyTaxes({ currency: 'JPY', rounding: 'half_up', lines: [base('1005')], rates: [rate('jct', '10')] });
    assert.deepEqual([taxes[0]!.exactAmount, taxes[0]!.amount], ['100.5', '101']);
  });
});

test('the order: pricing with its minimum, then discounts, then taxes', () => {
  const priced = pricePlan(
    {
      currency: 'USD',
      base_fee: '5.00',
      minimum_commitment: '20.00',
      charges: [{ meter: 'calls', model: 'per_unit', unit_price: '0.01' }],
    },
    { calls: 500 },
  );
  const lines = priced.lines.map((l) => ({ type: l.type, meter: l.meter, amount: l.amount }));
  const result = run(lines, [off('TEN', '10.00')], [rate('vat', '20')]);
  // 5.00 + 5.00 + true-up 10.00 = 20.00; −10.00 (base 5.00 then true-up 5.00); VAT 20 % of 10.00
  assert.deepEqual(
    result.discounts.map((d) => [d.meter, d.amount]),
    [[null, '-10.00']],
  );
  assert.deepEqual(result.totals, { net: '10.00', tax: '2.00', gross: '12.00' });
});

describe('a coupon targeting the base fee (worked table)', () => {
  const onBase = (code: string, discount: Coupon['discount'], meters?: string[]): CouponToApply => ({
    applicationId: `app-${code}`,
    coupon: CouponSchema.parse({
      code,
      name: code,
      discount,
      duration: { kind: 'forever' },
      base_fee: true,
      ...(meters ? { meters } : {}),
    }),
  });
  const cases: { name: string; lines: PipelineLine[]; coupons: CouponToApply[]; discounts: [string | null, string][] }[] = [
    {
      // 20 % of the base fee 25.00 = 5.00; calls untouched.
      name: 'a percentage of the base fee alone',
      lines: [base('25.00'), usage('calls', '12.00')],
      coupons: [onBase('PLATFORM', { type: 'percentage', percent_off: '20' })],
      discounts: [[null, '-5.00']],
    },
    {
      // 15.00 off, capped at the base fee and true-up group (5.00 + 7.00 = 12.00): nothing spills onto usage.
      name: 'a fixed amount on the base fee and true-up is capped at that group',
      lines: [base('5.00'), usage('calls', '8.00'), trueUp('7.00')],
      coupons: [onBase('FIFTEEN', { type: 'fixed_amount', amount_off: '15.00', currency: 'USD' })],
      discounts: [[null, '-12.00']],
    },
    {
      // With meters: the base fee group and those meters, not the others.
      name: 'the base fee and one meter',
      lines: [base('10.00'), usage('calls', '4.00'), usage('storage', '6.00')],
      coupons: [onBase('HALF', { type: 'percentage', percent_off: '50' }, ['calls'])],
      discounts: [
        [null, '-5.00'],
        ['calls', '-2.00'],
      ],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const discounts = applyDiscounts({ currency: 'USD', rounding: 'half_up', lines: c.lines, coupons: c.coupons });
      assert.deepEqual(
        discounts.map((d) => [d.meter, d.amount]),
        c.discounts,
      );
    });
  }

  test('a tax rate on the base fee alone taxes that group net of its discount, not the usage', () => {
    const levy: TaxRateToApply = {
      id: 'levy',
      ...TaxRateSchema.parse({ code: 'levy', name: 'Platform levy', percentage: '10', base_fee: true }),
    };
    // Base fee 25.00 − 5.00 (PLATFORM) = 20.00; 10 % = 2.00; the 12.00 of calls untaxed. With VAT
    // 20 % on everything as well: 20 % of 32.00 = 6.40, each rate of the same net, never compounded.
    const result = run(
      [base('25.00'), usage('calls', '12.00')],
      [onBase('PLATFORM', { type: 'percentage', percent_off: '20' })],
      [levy, rate('vat', '20')],
    );
    assert.deepEqual(
      result.taxes.map((t) => [t.meter, t.base, t.amount]),
      [
        [null, '20.00', '2.00'],
        [null, '32.00', '6.40'],
      ],
    );
    assert.match(result.taxes[0]!.description, /on the base fee/);
    assert.deepEqual(result.totals, { net: '32.00', tax: '8.40', gross: '40.40' });
    assert.throws(
      () => TaxRateSchema.parse({ code: 'x', name: 'X', percentage: '5', base_fee: true, meter: 'calls' }),
      /one target per rate/,
    );
  });

  test('then taxed on what is left: VAT 20 % of (25.00 − 5.00 + 12.00) = 6.40', () => {
    const result = run(
      [base('25.00'), usage('calls', '12.00')],
      [onBase('PLATFORM', { type: 'percentage', percent_off: '20' })],
      [rate('vat', '20')],
    );
    assert.deepEqual(result.totals, { net: '32.00', tax: '6.40', gross: '38.40' });
  });
});

/*
 * The whole pipeline, price → minimum → coupon → tax → credits → amount due, as worked by hand.
 * Plan: 5.00 base fee, 0.01 a call, a 20.00 minimum; credits pay the gross, tax included.
 */
describe('the whole pipeline down to the amount due (worked table)', () => {
  const grant = (id: string, remaining: string, priority = 0): GrantAvailable => ({
    id,
    priority,
    expiresAt: null,
    createdAt: new Date('2026-01-01T00:00:00Z'),
    remaining,
  });
  const cases: Array<{
    name: string;
    calls: number;
    coupons: CouponToApply[];
    rates: TaxRateToApply[];
    grants: GrantAvailable[];
    settlement?: Settlement;
    lines: Array<[string, string]>;
    totals: { net: string; tax: string; gross: string };
    drawdowns: Array<[string, string]>;
    due: string;
    shortfall?: string;
  }> = [
    {
      // 5.00 + 5.00 + true-up 10.00 = 20.00; −10.00; VAT 20 % of 10.00 = 2.00; 12.00 − 5.00 of credit.
      name: 'gross 12.00 with 5.00 of credit leaves 7.00 due',
      calls: 500,
      coupons: [off('TEN', '10.00')],
      rates: [rate('vat', '20')],
      grants: [grant('g1', '5.00')],
      lines: [
        ['base_fee', '5.00'],
        ['usage', '5.00'],
        ['minimum_commitment_true_up', '10.00'],
        ['discount', '-10.00'],
        ['tax', '2.00'],
      ],
      totals: { net: '10.00', tax: '2.00', gross: '12.00' },
      drawdowns: [['g1', '5.00']],
      due: '7.00',
    },
    {
      name: 'credit beyond the gross pays the gross, tax included: nothing due, the rest stays on the grant',
      calls: 500,
      coupons: [off('TEN', '10.00')],
      rates: [rate('vat', '20')],
      grants: [grant('g1', '50.00')],
      lines: [
        ['base_fee', '5.00'],
        ['usage', '5.00'],
        ['minimum_commitment_true_up', '10.00'],
        ['discount', '-10.00'],
        ['tax', '2.00'],
      ],
      totals: { net: '10.00', tax: '2.00', gross: '12.00' },
      drawdowns: [['g1', '12.00']],
      due: '0.00',
    },
    {
      // Above the minimum: no true-up. 5.00 + 15.00 = 20.00; 10 % per group = −0.50 − 1.50; 20 % of 18.00 = 3.60; 21.60
      // drawn from the priority-0 grant first (1.00), then the priority-1 grant (20.60).
      name: 'above the minimum, a percentage coupon, two grants drawn in priority order',
      calls: 1500,
      coupons: [pct('TENPCT', '10')],
      rates: [rate('vat', '20')],
      grants: [grant('later', '50.00', 1), grant('first', '1.00', 0)],
      lines: [
        ['base_fee', '5.00'],
        ['usage', '15.00'],
        ['discount', '-0.50'],
        ['discount', '-1.50'],
        ['tax', '3.60'],
      ],
      totals: { net: '18.00', tax: '3.60', gross: '21.60' },
      drawdowns: [
        ['first', '1.00'],
        ['later', '20.60'],
      ],
      due: '0.00',
    },
    {
      // No usage: the true-up makes 20.00, which a 100 % coupon removes whole: no tax, no credit drawn.
      name: 'a 100 % coupon on the minimum: gross 0.00, no credit drawn',
      calls: 0,
      coupons: [pct('FREE', '100')],
      rates: [rate('vat', '20')],
      grants: [grant('g1', '5.00')],
      lines: [
        ['base_fee', '5.00'],
        ['usage', '0.00'],
        ['minimum_commitment_true_up', '15.00'],
        ['discount', '-20.00'],
        ['tax', '0.00'],
      ],
      totals: { net: '0.00', tax: '0.00', gross: '0.00' },
      drawdowns: [],
      due: '0.00',
    },
    {
      name: 'credit_only: what credit does not cover is due, and flagged as the shortfall',
      calls: 500,
      coupons: [off('TEN', '10.00')],
      rates: [rate('vat', '20')],
      grants: [grant('g1', '5.00')],
      settlement: 'credit_only',
      lines: [
        ['base_fee', '5.00'],
        ['usage', '5.00'],
        ['minimum_commitment_true_up', '10.00'],
        ['discount', '-10.00'],
        ['tax', '2.00'],
      ],
      totals: { net: '10.00', tax: '2.00', gross: '12.00' },
      drawdowns: [['g1', '5.00']],
      due: '7.00',
      shortfall: '7.00',
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const priced = pricePlan(
        {
          currency: 'USD',
          base_fee: '5.00',
          minimum_commitment: '20.00',
          charges: [{ meter: 'calls', model: 'per_unit', unit_price: '0.01' }],
        },
        { calls: c.calls },
      );
      const lines = priced.lines.map((l) => ({ type: l.type, meter: l.meter, amount: l.amount }));
      const after = run(lines, c.coupons, c.rates);
      assert.deepEqual(
        [...lines, ...after.discounts, ...after.taxes].map((l) => [l.type, l.amount]),
        c.lines,
      );
      assert.deepEqual(after.totals, c.totals);
      const credits = applyCredits({
        currency: 'USD',
        due: after.totals.gross,
        grants: c.grants,
        settlement: c.settlement ?? 'credit_then_invoice',
      });
      assert.deepEqual(
        credits.drawdowns.map((d) => [d.grantId, d.amount]),
        c.drawdowns,
      );
      assert.equal(credits.amountDue, c.due);
      assert.equal(credits.shortfall, c.shortfall ?? null);
      // The invoice adds up: gross − credits applied = amount due.
      assert.equal(formatMoney(new Decimal(after.totals.gross).minus(credits.applied), 'USD'), c.due);
    });
  }
});

/* Properties */
const cents = (max: number) => fc.integer({ min: 0, max }).map((n) => formatMoney(new Decimal(n).div(100), 'USD'));
const meters = ['a', 'b', 'c'];
const linesArb: fc.Arbitrary<PipelineLine[]> = fc
  .tuple(
    cents(100_000),
    fc.array(fc.tuple(fc.constantFrom(...meters), cents(1_000_000)), { maxLength: 5 }),
    fc.option(cents(50_000), { nil: undefined }),
  )
  .map(([fee, used, up]) => [base(fee), ...used.map(([m, a]) => usage(m, a)), ...(up === undefined ? [] : [trueUp(up)])]);
const couponArb: fc.Arbitrary<CouponToApply> = fc
  .tuple(
    fc.boolean(),
    fc.integer({ min: 1, max: 10_000 }),
    cents(2_000_000).filter((t) => new Decimal(t).gt(0)),
    fc.option(fc.subarray(meters, { minLength: 1 }), { nil: undefined }),
    fc.nat(),
  )
  .map(([percentage, bp, amount, only, n]) =>
    percentage ? pct(`P${n}`, new Decimal(bp).div(100).toFixed(), only) : off(`F${n}`, amount, only),
  );
const percentArb = fc.integer({ min: 1, max: 9_999 }).map((bp) => new Decimal(bp).div(100).toFixed());
const ratesArb = (inclusive: boolean) =>
  fc
    .array(fc.tuple(percentArb, fc.option(fc.constantFrom(...meters), { nil: null })), { maxLength: 4 })
    .map((rs) => rs.map(([p, m], i) => rate(`r${i}`, p, inclusive, m)));

const sum = (values: readonly string[]) => values.reduce((t, v) => t.plus(v), new Decimal(0) as DecimalValue);

describe('properties', () => {
  test('discounts never take the charges below zero, nor any meter group', () => {
    fc.assert(
      fc.property(linesArb, fc.array(couponArb, { maxLength: 4 }), (lines, coupons) => {
        const discounts = applyDiscounts({ currency: 'USD', rounding: 'half_up', lines, coupons });
        assert.ok(discounts.every((d) => new Decimal(d.amount).lte(0)));
        const groups = new Set(lines.map((l) => l.meter));
        for (const meter of groups) {
          const net = sum([...lines, ...discounts].filter((l) => l.meter === meter).map((l) => l.amount));
          assert.ok(net.gte(0), `group ${meter} went negative: ${net.toFixed()}`);
        }
      }),
    );
  });

  test('each tax line is its exact amount rounded once; the totals add up from the lines', () => {
    fc.assert(
      fc.property(linesArb, fc.array(couponArb, { maxLength: 2 }), fc.boolean().chain(ratesArb), (lines, coupons, rates) => {
        const result = run(lines, coupons, rates);
        for (const t of result.taxes) {
          assert.equal(t.amount, formatMoney(new Decimal(t.exactAmount).toDecimalPlaces(2, Decimal.ROUND_HALF_UP), 'USD'));
        }
        const all = [...lines, ...result.discounts, ...result.taxes];
        const adding = all.filter((l) => !('inclusive' in l && l.inclusive));
        assert.equal(result.totals.gross, formatMoney(sum(adding.map((l) => l.amount)), 'USD'));
        assert.equal(sum([result.totals.net, result.totals.tax]).toFixed(2), result.totals.gross);
        assert.deepEqual(invoiceTotals('USD', all), result.totals);
      }),
    );
  });

  test('exclusive: tax is rate × net per rate; inclusive: gross is the charges, and each tax within a cent of rate/(1+rates)', () => {
    fc.assert(
      fc.property(linesArb, ratesArb(false), (lines, rates) => {
        const result = run(lines, [], rates);
        assert.equal(result.totals.net, formatMoney(sum(lines.map((l) => l.amount)), 'USD'));
        result.taxes.forEach((t, i) => {
          const r = rates[i]!;
          const basis = sum(lines.filter((l) => r.meter === null || l.meter === r.meter).map((l) => l.amount));
          assert.ok(new Decimal(t.amount).minus(basis.times(r.percentage).div(100)).abs().lte('0.005'));
        });
      }),
    );
    fc.assert(
      fc.property(linesArb, ratesArb(true), (lines, rates) => {
        const result = run(lines, [], rates);
        assert.equal(result.totals.gross, formatMoney(sum(lines.map((l) => l.amount)), 'USD'));
        const single = rates.length === 1 && rates[0]!.meter === null ? rates[0] : undefined;
        if (single) {
          const gross = new Decimal(result.totals.gross);
          assert.ok(
            new Decimal(result.totals.tax)
              .minus(gross.times(single.percentage).div(new Decimal(100).plus(single.percentage)))
              .abs()
              .lte('0.005'),
          );
        }
      }),
    );
  });
});

describe('reconciliation reprices discounts and taxes', () => {
  const coupons = [pct('TEN', '10')];
  const rates = [rate('vat', '20')];
  const stored = (discount: string, tax: string) => [
    { type: 'base_fee', meter: null, amount: '10.00', applicationId: null, taxRateId: null },
    { type: 'discount', meter: null, amount: discount, applicationId: 'app-TEN', taxRateId: null },
    { type: 'tax', meter: null, amount: tax, applicationId: null, taxRateId: 'vat' },
  ];
  const compare = (lines: ReturnType<typeof stored>, taxRates = rates) =>
    compareDiscountsAndTaxes({ currency: 'USD', rounding: 'half_up', lines, coupons, taxRates }).found.map((d) => [
      d.kind,
      d.subject,
      d.expected,
      d.actual,
    ]);

  test('lines as the steps give them: nothing to report; discounts and exclusive taxes add −1.00 + 1.80 to the total', () => {
    assert.deepEqual(compare(stored('-1.00', '1.80')), []);
    const { addedToTotal } = compareDiscountsAndTaxes({
      currency: 'USD',
      rounding: 'half_up',
      lines: stored('-1.00', '1.80'),
      coupons,
      taxRates: rates,
    });
    assert.equal(addedToTotal, '0.8');
  });
  test('a discount or tax line that differs is reported with both amounts', () => {
    assert.deepEqual(compare(stored('-1.50', '1.70')), [
      ['discount_mismatch', 'TEN/base fee and minimum commitment', { amount: '-1.00' }, { amount: '-1.50' }],
      ['tax_mismatch', 'vat', { amount: '1.80' }, { amount: '1.70' }],
    ]);
  });
  test('a rate in force but missing from the invoice is reported', () => {
    const lines = stored('-1.00', '1.80');
    assert.deepEqual(compare(lines, [...rates, rate('city', '1')]), [['tax_mismatch', 'city', { amount: '0.09' }, { amount: '0.00' }]]);
  });
});
