import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PricePlanSchema, pricePlanSchema } from '../../src/domain/pricing';
import { problemFromZod } from '../../src/api/problem';

const tiers = [
  { up_to: '5', unit_price: '7' },
  { up_to: '10', unit_price: '6.50' },
  { up_to: null, unit_price: '6' },
];
const planWith = (charge: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  currency: 'USD',
  charges: [{ meter: 'seats', ...charge }],
  ...extra,
});

/** Each invalid plan, the field its first issue names, and what the message says. */
const invalid: { name: string; plan: unknown; path: string; message: RegExp }[] = [
  {
    name: 'non-increasing tiers',
    plan: planWith({
      model: 'graduated',
      tiers: [
        { up_to: '5', unit_price: '7' },
        { up_to: '5', unit_price: '6' },
        { up_to: null, unit_price: '5' },
      ],
    }),
    path: 'charges.0.tiers.1.up_to',
    message: /^must be greater than the previous tier's up_to \("5"\)/,
  },
  {
    name: 'overlapping tiers',
    plan: planWith({
      model: 'volume',
      tiers: [
        { up_to: '10', unit_price: '7' },
        { up_to: '5', unit_price: '6' },
        { up_to: null, unit_price: '5' },
      ],
    }),
    path: 'charges.0.tiers.1.up_to',
    message: /tiers must increase and may not overlap/,
  },
  {
    name: 'first tier ending at 0',
    plan: planWith({
      model: 'graduated',
      tiers: [
        { up_to: '0', unit_price: '7' },
        { up_to: null, unit_price: '6' },
      ],
    }),
    path: 'charges.0.tiers.0.up_to',
    message: /^must be greater than 0$/,
  },
  {
    name: 'missing open-ended last tier',
    plan: planWith({ model: 'graduated', tiers: tiers.slice(0, 2) }),
    path: 'charges.0.tiers.1.up_to',
    message: /the last tier must be open-ended \(up_to: null\)/,
  },
  {
    name: 'open-ended tier before the last',
    plan: planWith({
      model: 'volume',
      tiers: [
        { up_to: null, unit_price: '7' },
        { up_to: null, unit_price: '6' },
      ],
    }),
    path: 'charges.0.tiers.0.up_to',
    message: /only the last tier may be open-ended/,
  },
  { name: 'no tiers', plan: planWith({ model: 'graduated', tiers: [] }), path: 'charges.0.tiers', message: /at least one tier/ },
  {
    name: 'negative unit price',
    plan: planWith({ model: 'per_unit', unit_price: '-0.10' }),
    path: 'charges.0.unit_price',
    message: /^must not be negative \(got "-0.10"\)$/,
  },
  {
    name: 'negative tier price',
    plan: planWith({
      model: 'graduated',
      tiers: [
        { up_to: '5', unit_price: '-7' },
        { up_to: null, unit_price: '6' },
      ],
    }),
    path: 'charges.0.tiers.0.unit_price',
    message: /must not be negative/,
  },
  {
    name: 'negative flat fee',
    plan: planWith({ model: 'volume', tiers: [{ up_to: null, unit_price: '1', flat_fee: '-5' }] }),
    path: 'charges.0.tiers.0.flat_fee',
    message: /must not be negative/,
  },
  {
    name: 'price as a JSON number',
    plan: planWith({ model: 'per_unit', unit_price: 0.1 }),
    path: 'charges.0.unit_price',
    message: /JSON numbers are refused/,
  },
  {
    name: 'price in exponent notation',
    plan: planWith({ model: 'per_unit', unit_price: '1e-9' }),
    path: 'charges.0.unit_price',
    message: /"1e-9" is not a decimal string/,
  },
  {
    name: 'price NaN',
    plan: planWith({ model: 'per_unit', unit_price: 'NaN' }),
    path: 'charges.0.unit_price',
    message: /"NaN" is not a decimal string/,
  },
  {
    name: 'price Infinity',
    plan: planWith({ model: 'overage', included_units: '10', unit_price: 'Infinity' }),
    path: 'charges.0.unit_price',
    message: /"Infinity" is not a decimal string/,
  },
  { name: 'missing price', plan: planWith({ model: 'per_unit' }), path: 'charges.0.unit_price', message: /^is required$/ },
  {
    name: 'package size 0',
    plan: planWith({ model: 'package', package_size: '0', package_price: '5' }),
    path: 'charges.0.package_size',
    message: /^must be greater than 0 \(got "0"\)$/,
  },
  {
    name: 'negative package size',
    plan: planWith({ model: 'package', package_size: '-100', package_price: '5' }),
    path: 'charges.0.package_size',
    message: /must not be negative/,
  },
  {
    name: 'negative free units',
    plan: planWith({ model: 'package', package_size: '100', package_price: '5', free_units: '-1' }),
    path: 'charges.0.free_units',
    message: /must not be negative/,
  },
  {
    name: 'unknown currency',
    plan: { currency: 'XYZ', charges: [] },
    path: 'currency',
    message: /^unknown currency "XYZ": expected an active ISO 4217 code/,
  },
  { name: 'lower-case currency', plan: { currency: 'usd', charges: [] }, path: 'currency', message: /unknown currency "usd"/ },
  { name: 'unknown model', plan: planWith({ model: 'tiered', unit_price: '1' }), path: 'charges.0.model', message: /per_unit/ },
  {
    name: 'misspelt key',
    plan: planWith({ model: 'volume', tiers: [{ up_to: null, unit_price: '1', flatfee: '5' }] }),
    path: 'charges.0.tiers.0',
    message: /Unrecognized key: "flatfee"/,
  },
  {
    name: 'two charges on one meter',
    plan: {
      currency: 'USD',
      charges: [
        { meter: 'seats', model: 'per_unit', unit_price: '1' },
        { meter: 'seats', model: 'per_unit', unit_price: '2' },
      ],
    },
    path: 'charges.1.meter',
    message: /meter "seats" already has a charge/,
  },
  {
    name: 'empty meter name',
    plan: planWith({ meter: '', model: 'per_unit', unit_price: '1' }),
    path: 'charges.0.meter',
    message: /must not be empty/,
  },
  {
    name: 'base fee finer than the currency',
    plan: { currency: 'USD', base_fee: '9.999', charges: [] },
    path: 'base_fee',
    message: /^"9.999" has more decimal places than USD allows \(2\)$/,
  },
  {
    name: 'minimum commitment with decimals in JPY',
    plan: { currency: 'JPY', minimum_commitment: '1000.5', charges: [] },
    path: 'minimum_commitment',
    message: /more decimal places than JPY allows \(0\)/,
  },
  { name: 'unknown rounding mode', plan: { currency: 'USD', rounding: 'down', charges: [] }, path: 'rounding', message: /half_up/ },
];

describe('plan schema refuses invalid plans, naming the field', () => {
  for (const c of invalid) {
    test(c.name, () => {
      const result = PricePlanSchema.safeParse(c.plan);
      assert.equal(result.success, false);
      const [first] = result.error!.issues;
      assert.equal(first!.path.join('.'), c.path);
      assert.match(first!.message, c.message);
    });
  }

  test('the problem detail an API client sees names the field as a pointer', () => {
    const result = PricePlanSchema.safeParse(invalid[0]!.plan);
    const problem = problemFromZod(result.error!);
    assert.equal(
      problem.detail,
      `Invalid body: charges/0/tiers/1/up_to: must be greater than the previous tier's up_to ("5"): tiers must increase and may not overlap`,
    );
  });

  test('every mistake is reported at once', () => {
    const result = PricePlanSchema.safeParse({
      currency: 'XYZ',
      charges: [
        { meter: 'a', model: 'per_unit', unit_price: '-1' },
        { meter: 'b', model: 'package', package_size: '0', package_price: '1' },
      ],
    });
    assert.deepEqual(
      result.error!.issues.map((i) => i.path.join('.')),
      ['currency', 'charges.0.unit_price', 'charges.1.package_size'],
    );
  });

  test('an unknown currency is the only complaint about a fee in it', () => {
    const result = PricePlanSchema.safeParse({ currency: 'XYZ', base_fee: '1.2345', charges: [] });
    assert.deepEqual(
      result.error!.issues.map((i) => i.path.join('.')),
      ['currency'],
    );
  });
});

describe('plan schema accepts valid plans', () => {
  test('every model, base fee, commitment and rounding', () => {
    const plan = {
      id: 'pro-2026',
      currency: 'KWD',
      rounding: 'half_even',
      base_fee: '10.500',
      minimum_commitment: '100',
      charges: [
        { meter: 'seats', model: 'graduated', tiers: [...tiers.slice(0, 2), { up_to: null, unit_price: '6', flat_fee: '1.5' }] },
        { meter: 'storage_gb', model: 'volume', tiers },
        { meter: 'api_calls', model: 'per_unit', unit_price: '0.000000001' },
        { meter: 'sms', model: 'package', package_size: '100', package_price: '5', free_units: '50' },
        { meter: 'gb_hours', model: 'overage', included_units: '730.5', unit_price: '0.0125' },
      ],
    };
    assert.deepEqual(PricePlanSchema.parse(plan), plan);
  });

  test('fractional tier bounds', () => {
    assert.equal(
      PricePlanSchema.safeParse(
        planWith({
          model: 'graduated',
          tiers: [
            { up_to: '0.5', unit_price: '1' },
            { up_to: '0.75', unit_price: '1' },
            { up_to: null, unit_price: '1' },
          ],
        }),
      ).success,
      true,
    );
  });
});

describe('known meters', () => {
  const schema = pricePlanSchema({ knownMeters: new Set(['api_calls', 'seats']) });

  test('a charge on a meter that is not defined is refused', () => {
    const result = schema.safeParse({
      currency: 'USD',
      charges: [
        { meter: 'seats', model: 'per_unit', unit_price: '1' },
        { meter: 'api_cals', model: 'per_unit', unit_price: '1' },
      ],
    });
    assert.equal(result.success, false);
    assert.deepEqual(
      result.error!.issues.map((i) => [i.path.join('.'), i.message]),
      [['charges.1.meter', 'unknown meter "api_cals": no meter with this name is defined']],
    );
  });

  test('charges on defined meters pass; without a set every meter passes', () => {
    const plan = { currency: 'USD', charges: [{ meter: 'api_calls', model: 'per_unit', unit_price: '1' }] };
    assert.equal(schema.safeParse(plan).success, true);
    assert.equal(pricePlanSchema().safeParse({ ...plan, charges: [{ ...plan.charges[0], meter: 'anything' }] }).success, true);
  });
});
