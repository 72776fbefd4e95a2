import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { currencyCodes } from '../../src/domain/currencies';
import { Decimal, formatExact, formatMoney, roundToMinor, roundingModes, type Decimal as DecimalValue } from '../../src/domain/money';
import { pricePlan, type Charge, type PricePlan, type Tier } from '../../src/domain/pricing';

/** A non-negative decimal string with up to `maxScale` fraction digits, built from integers (no floats). */
const decimal = (maxUnits: bigint, maxScale = 4) =>
  fc
    .tuple(fc.bigInt({ min: 0n, max: maxUnits * 10n ** BigInt(maxScale) }), fc.integer({ min: 0, max: maxScale }))
    .map(([n, scale]) => formatExact(new Decimal(n.toString()).div(new Decimal(10).pow(scale))));
const positive = (maxUnits: bigint, maxScale = 4) => decimal(maxUnits, maxScale).filter((text) => new Decimal(text).gt(0));

/** 1–5 tiers with strictly increasing bounds and an open-ended last tier. */
const tiers: fc.Arbitrary<Tier[]> = fc
  .array(fc.record({ width: positive(1000n, 2), unit_price: decimal(100n, 9), flat_fee: fc.option(decimal(50n, 2), { nil: undefined }) }), {
    minLength: 1,
    maxLength: 5,
  })
  .map((raw) => {
    let bound = new Decimal(0);
    return raw.map(({ width, unit_price, flat_fee }, i) => {
      bound = bound.plus(width);
      const tier: Tier = { up_to: i === raw.length - 1 ? null : formatExact(bound), unit_price };
      return flat_fee === undefined ? tier : { ...tier, flat_fee };
    });
  });

const quantity = decimal(10_000n, 6);

function exactAmount(charge: Charge, q: string | number): DecimalValue {
  const line = pricePlan({ currency: 'USD', charges: [charge] }, { [charge.meter]: q }).lines[0]!;
  return new Decimal(line.exact_amount);
}

/** Graduated, computed independently: each tier's share of the quantity, plus the fee of every tier entered. */
function graduatedOracle(tierList: Tier[], q: DecimalValue): DecimalValue {
  let from = new Decimal(0);
  let total = new Decimal(0);
  for (const tier of tierList) {
    const to = tier.up_to === null ? null : new Decimal(tier.up_to);
    if (q.gt(from)) {
      const units = Decimal.min(q, to ?? q).minus(from);
      total = total.plus(units.times(tier.unit_price)).plus(tier.flat_fee ?? 0);
    }
    if (to) from = to;
  }
  return total;
}

describe('pricing properties', () => {
  test('graduated never decreases as quantity grows', () => {
    fc.assert(
      fc.property(tiers, quantity, quantity, (tierList, a, b) => {
        const [low, high] = new Decimal(a).lte(b) ? [a, b] : [b, a];
        const charge: Charge = { meter: 'm', model: 'graduated', tiers: tierList };
        assert.ok(exactAmount(charge, low).lte(exactAmount(charge, high)), `${low} → ${high}`);
      }),
    );
  });

  test('graduated equals the sum of its tier lines, and an independent computation', () => {
    fc.assert(
      fc.property(tiers, quantity, (tierList, q) => {
        const line = pricePlan({ currency: 'USD', charges: [{ meter: 'm', model: 'graduated', tiers: tierList }] }, { m: q }).lines[0]!;
        const rows = line.breakdown.reduce((sum, row) => sum.plus(row.amount), new Decimal(0));
        const units = line.breakdown.reduce((sum, row) => sum.plus(row.units), new Decimal(0));
        assert.equal(line.exact_amount, formatExact(rows));
        assert.equal(formatExact(units), formatExact(new Decimal(q)));
        assert.equal(line.exact_amount, formatExact(graduatedOracle(tierList, new Decimal(q))));
      }),
    );
  });

  test('volume prices every unit at the tier the total falls in', () => {
    fc.assert(
      fc.property(tiers, quantity, (tierList, q) => {
        const total = new Decimal(q);
        const tier = tierList.find((t) => t.up_to === null || total.lte(t.up_to))!;
        const expected = total.isZero() ? new Decimal(0) : total.times(tier.unit_price).plus(tier.flat_fee ?? 0);
        assert.equal(formatExact(exactAmount({ meter: 'm', model: 'volume', tiers: tierList }, q)), formatExact(expected));
      }),
    );
  });

  test('package equals ceil(max(0, q − free) / size) × price', () => {
    fc.assert(
      fc.property(quantity, decimal(1000n, 3), positive(500n, 3), decimal(100n, 6), (q, free, size, price) => {
        const charge: Charge = { meter: 'm', model: 'package', package_size: size, package_price: price, free_units: free };
        const expected = Decimal.max(0, new Decimal(q).minus(free)).div(size).ceil().times(price);
        assert.equal(formatExact(exactAmount(charge, q)), formatExact(expected));
      }),
    );
  });

  test('overage equals max(0, q − included) × price', () => {
    fc.assert(
      fc.property(quantity, decimal(5000n, 3), decimal(10n, 9), (q, included, price) => {
        const expected = Decimal.max(0, new Decimal(q).minus(included)).times(price);
        assert.equal(
          formatExact(exactAmount({ meter: 'm', model: 'overage', included_units: included, unit_price: price }, q)),
          formatExact(expected),
        );
      }),
    );
  });

  const plan: fc.Arbitrary<PricePlan> = fc
    .record({
      currency: fc.constantFrom(...currencyCodes),
      rounding: fc.constantFrom(...roundingModes),
      tiers,
      unitPrice: decimal(100n, 9),
      size: positive(100n, 2),
    })
    .map(({ currency, rounding, tiers: tierList, unitPrice, size }) => ({
      currency,
      rounding,
      charges: [
        { meter: 'a', model: 'per_unit', unit_price: unitPrice },
        { meter: 'b', model: 'graduated', tiers: tierList },
        { meter: 'c', model: 'volume', tiers: tierList },
        { meter: 'd', model: 'package', package_size: size, package_price: unitPrice },
        { meter: 'e', model: 'overage', included_units: size, unit_price: unitPrice },
      ],
    }));

  test('integer quantities give identical results as numbers and as strings', () => {
    fc.assert(
      fc.property(plan, fc.array(fc.maxSafeNat(), { minLength: 5, maxLength: 5 }), (p, qs) => {
        const meters = ['a', 'b', 'c', 'd', 'e'];
        const asNumbers = Object.fromEntries(meters.map((m, i) => [m, qs[i]!]));
        const asStrings = Object.fromEntries(meters.map((m, i) => [m, String(qs[i]!)]));
        assert.deepEqual(pricePlan(p, asNumbers), pricePlan(p, asStrings));
      }),
    );
  });

  test('each line is rounded once, and the total is the sum of the rounded lines', () => {
    fc.assert(
      fc.property(plan, fc.array(quantity, { minLength: 5, maxLength: 5 }), decimal(1000n, 0), (p, qs, commitment) => {
        const priced = pricePlan(
          { ...p, minimum_commitment: commitment },
          Object.fromEntries(['a', 'b', 'c', 'd', 'e'].map((m, i) => [m, qs[i]!])),
        );
        const sum = priced.lines.reduce((acc, line) => acc.plus(line.amount), new Decimal(0));
        assert.equal(priced.totals.total, formatMoney(sum, p.currency));
        assert.ok(new Decimal(priced.totals.total).gte(commitment));
        for (const line of priced.lines) {
          assert.equal(line.amount, formatMoney(roundToMinor(new Decimal(line.exact_amount), p.currency, p.rounding), p.currency));
        }
      }),
    );
  });
});
