import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import DecimalJs from 'decimal.js';
import { DecimalSum } from '../../src/domain/metering/decimal-sum';

// Wide enough that no sum here is ever rounded: 30 integer + 20 fraction digits, times a few thousand addends.
const Exact = DecimalJs.clone({ precision: 200 });

/** What meterValue lets through: no leading zeros, at most 30 integer and 20 fraction digits, trailing zeros kept. */
const plainDecimal = fc
  .tuple(
    fc.oneof(fc.constant('0'), fc.stringMatching(/^[1-9]\d{0,29}$/), fc.integer({ min: 1, max: 999 }).map(String)),
    fc.option(fc.stringMatching(/^\d{1,20}$/), { nil: undefined }),
  )
  .map(([int, fraction]) => (fraction === undefined ? int : `${int}.${fraction}`));

/** PostgreSQL's sum(numeric): exact, with the largest scale among the addends. */
function expected(values: readonly string[]): string {
  const scale = Math.max(0, ...values.map((v) => (v.includes('.') ? v.length - v.indexOf('.') - 1 : 0)));
  return values.reduce((sum, v) => sum.plus(v), new Exact(0)).toFixed(scale);
}

function sumOf(values: readonly string[]): string {
  const sum = new DecimalSum();
  for (const v of values) sum.add(v);
  return sum.toString();
}

describe('DecimalSum', () => {
  test('no addends is 0', () => {
    assert.equal(new DecimalSum().toString(), '0');
  });

  test('keeps the largest scale among the addends, trailing zeros included', () => {
    assert.equal(sumOf(['1.50', '2']), '3.50');
    assert.equal(sumOf(['0.000']), '0.000');
    assert.equal(sumOf(['0.1', '0.2']), '0.3');
    assert.equal(sumOf(['0.05', '0.05']), '0.10');
  });

  test('stays exact past the safe integers, in the integer and the fraction', () => {
    assert.equal(sumOf(['9007199254740991', '1']), '9007199254740992');
    assert.equal(sumOf(['900719925474099.1', '0.1']), '900719925474099.2');
    assert.equal(
      sumOf(['0.1', '0.2', '123456789012345678901234567890.00000000000000000001']),
      '123456789012345678901234567890.30000000000000000001',
    );
    assert.equal(sumOf(['99999999999999', '0.00000000000000000001']), '99999999999999.00000000000000000001');
  });

  test('equals an exact decimal sum for any plain decimals, in any order', () => {
    fc.assert(
      fc.property(fc.array(plainDecimal, { maxLength: 60 }), (values) => {
        assert.equal(sumOf(values), expected(values));
      }),
      { numRuns: 2000 },
    );
  });

  test('equals an exact decimal sum over thousands of 14-digit addends, whose sum leaves the safe integers', () => {
    fc.assert(
      fc.property(
        fc.array(fc.bigInt({ min: 10n ** 13n, max: 10n ** 14n }), { minLength: 1000, maxLength: 3000 }),
        fc.integer({ min: 0, max: 6 }),
        (units, scale) => {
          const values = units.map((u) => new Exact(u.toString()).div(new Exact(10).pow(scale)).toFixed(scale));
          assert.equal(sumOf(values), expected(values));
        },
      ),
      { numRuns: 50 },
    );
  });
});
