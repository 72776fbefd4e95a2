import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isSpendCap } from '../../src/domain/spend-limit';
import { SpendCapSchema } from '../../src/domain/spend-limit-schema';
import { isSpendThresholds } from '../../src/domain/spend-thresholds';
import { SpendThresholdsSchema } from '../../src/domain/spend-thresholds-schema';

/*
 * The billing workflow's update validators check their input with zod-free guards, so that the
 * workflow bundle does not load zod. Their contract: a guard accepts exactly the values the API's
 * schema outputs, i.e. what the schema accepts and returns unchanged (defaults filled in, no key
 * dropped). The same generated inputs, well-formed and not, go to both. Compared as the JSON they
 * travel as in a Temporal payload (generated objects may have a null prototype; zod's output not).
 */

const asJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value) ?? 'null');

const schemaOutputs = (schema: { safeParse(v: unknown): { success: boolean; data?: unknown } }, value: unknown) => {
  const r = schema.safeParse(value);
  return r.success && isDeepStrictEqual(asJson(r.data), asJson(value));
};

const amount = fc.oneof(
  fc.constantFrom('0', '0.00', '500.00', '1', '-1', '1e3', '1.', '.5', ' 1', 'NaN', '', '0.000001', '9'.repeat(21)),
  fc.stringMatching(/^\d{1,4}(\.\d{1,3})?$/),
  fc.double(),
  fc.integer(),
  fc.constant(null),
);
const duration = fc.oneof(fc.constantFrom('PT1H', 'PT0S', 'P1D', 'P1M', 'PT', '1h', '', 'P2W', 'PT90S'), fc.string({ maxLength: 6 }));
const percent = fc.oneof(
  fc.constantFrom(0, 80, 100, 100.5, -5, 50.5, Number.NaN, Number.POSITIVE_INFINITY),
  fc.integer({ min: -10, max: 120 }),
  fc.constant('80'),
);
const extraKey = fc.constantFrom('currency', 'amounts', 'percent', '__other');

/** Objects with each known key present or not, sometimes an unknown one, and non-objects. */
function shaped(fields: Record<string, fc.Arbitrary<unknown>>) {
  return fc.oneof(
    fc.record(fields, { requiredKeys: [] }),
    fc.tuple(fc.record(fields), extraKey, fc.anything()).map(([o, k, v]) => ({ ...o, [k]: v })),
    fc.constantFrom(null, [], 'x', 1),
  );
}

describe('workflow input guards accept exactly what the API schemas output', () => {
  test('spend thresholds', () => {
    const thresholds = shaped({
      amounts: fc.oneof(
        fc.array(amount, { maxLength: 4 }),
        fc.array(fc.constant('1.00'), { minLength: 49, maxLength: 52 }),
        fc.constant('1'),
      ),
      every: amount,
    });
    fc.assert(
      fc.property(thresholds, (value) =>
        assert.equal(isSpendThresholds(value), schemaOutputs(SpendThresholdsSchema, value), JSON.stringify(value)),
      ),
      { numRuns: 3000 },
    );
  });

  test('spend cap', () => {
    const cap = shaped({
      amount,
      grace_period: duration,
      soft_thresholds: fc.oneof(
        fc.array(shaped({ percent }), { maxLength: 4 }),
        fc.array(fc.record({ percent: fc.integer({ min: 1, max: 100 }) }), { minLength: 9, maxLength: 12 }),
        fc.constant({ percent: 80 }),
      ),
    });
    fc.assert(
      fc.property(cap, (value) => assert.equal(isSpendCap(value), schemaOutputs(SpendCapSchema, value), JSON.stringify(value))),
      { numRuns: 3000 },
    );
  });

  test('both accept what the API sends', () => {
    assert.ok(isSpendThresholds({ amounts: ['500.00', '2000'], every: null }));
    assert.ok(isSpendThresholds({ amounts: [], every: '1000.00' }));
    assert.ok(isSpendCap({ amount: '250.00', grace_period: 'PT1H', soft_thresholds: [{ percent: 80 }, { percent: 100 }] }));
    assert.ok(isSpendCap({ amount: '0' }));
    assert.ok(!isSpendThresholds({ amounts: ['500.00'] }), 'a default the schema fills in is not filled in by the workflow');
    assert.ok(!isSpendCap({ amount: '250.00', soft_thresholds: [{ percent: 80 }, { percent: 80 }] }));
  });
});
