import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PricePlanSchema, PricingError, pricePlan, type Charge, type PricePlan, type PriceLine } from '../../src/domain/pricing';

/** Breakdown rows as [units, unit_price, flat_fee, amount]: enough to check the arithmetic shown. */
type Detail = [units: string, unitPrice: string, flatFee: string, amount: string];

interface Case {
  name: string;
  charge: Charge;
  quantity: string | number;
  /** Exact, unrounded amount. */
  amount: string;
  /** Rounded line amount, in USD unless the case says otherwise. */
  rounded: string;
  details: Detail[];
}

/** The published example: units 1–5 at $7, 6–10 at $6.50, 11 and above at $6. */
const publishedTiers = [
  { up_to: '5', unit_price: '7' },
  { up_to: '10', unit_price: '6.50' },
  { up_to: null, unit_price: '6' },
];
const graduated: Charge = { meter: 'seats', model: 'graduated', tiers: publishedTiers };
const volume: Charge = { meter: 'seats', model: 'volume', tiers: publishedTiers };
const withFees = [
  { up_to: '100', unit_price: '0', flat_fee: '10' },
  { up_to: null, unit_price: '0.5', flat_fee: '5' },
];

const cases: Case[] = [
  // Graduated, published table: 12 units = 5 × 7 + 5 × 6.50 + 2 × 6 = 79.50.
  { name: 'graduated: 0 units', charge: graduated, quantity: 0, amount: '0', rounded: '0.00', details: [] },
  { name: 'graduated: 1 unit', charge: graduated, quantity: 1, amount: '7', rounded: '7.00', details: [['1', '7', '0', '7']] },
  {
    name: 'graduated: exactly at up_to 5',
    charge: graduated,
    quantity: 5,
    amount: '35',
    rounded: '35.00',
    details: [['5', '7', '0', '35']],
  },
  {
    name: 'graduated: one above up_to 5',
    charge: graduated,
    quantity: 6,
    amount: '41.5',
    rounded: '41.50',
    details: [
      ['5', '7', '0', '35'],
      ['1', '6.5', '0', '6.5'],
    ],
  },
  {
    name: 'graduated: exactly at up_to 10',
    charge: graduated,
    quantity: 10,
    amount: '67.5',
    rounded: '67.50',
    details: [
      ['5', '7', '0', '35'],
      ['5', '6.5', '0', '32.5'],
    ],
  },
  {
    name: 'graduated: one above up_to 10',
    charge: graduated,
    quantity: 11,
    amount: '73.5',
    rounded: '73.50',
    details: [
      ['5', '7', '0', '35'],
      ['5', '6.5', '0', '32.5'],
      ['1', '6', '0', '6'],
    ],
  },
  {
    name: 'graduated: 12 units (published)',
    charge: graduated,
    quantity: 12,
    amount: '79.5',
    rounded: '79.50',
    details: [
      ['5', '7', '0', '35'],
      ['5', '6.5', '0', '32.5'],
      ['2', '6', '0', '12'],
    ],
  },
  {
    name: 'graduated: fractional 5.5 units',
    charge: graduated,
    quantity: '5.5',
    amount: '38.25',
    rounded: '38.25',
    details: [
      ['5', '7', '0', '35'],
      ['0.5', '6.5', '0', '3.25'],
    ],
  },
  // Volume, same table: 12 units all at $6 = 72.00.
  { name: 'volume: 0 units', charge: volume, quantity: 0, amount: '0', rounded: '0.00', details: [] },
  { name: 'volume: 1 unit', charge: volume, quantity: 1, amount: '7', rounded: '7.00', details: [['1', '7', '0', '7']] },
  { name: 'volume: exactly at up_to 5', charge: volume, quantity: 5, amount: '35', rounded: '35.00', details: [['5', '7', '0', '35']] },
  { name: 'volume: one above up_to 5', charge: volume, quantity: 6, amount: '39', rounded: '39.00', details: [['6', '6.5', '0', '39']] },
  {
    name: 'volume: exactly at up_to 10',
    charge: volume,
    quantity: 10,
    amount: '65',
    rounded: '65.00',
    details: [['10', '6.5', '0', '65']],
  },
  { name: 'volume: one above up_to 10', charge: volume, quantity: 11, amount: '66', rounded: '66.00', details: [['11', '6', '0', '66']] },
  { name: 'volume: 12 units (published)', charge: volume, quantity: 12, amount: '72', rounded: '72.00', details: [['12', '6', '0', '72']] },
  {
    name: 'volume: fractional 5.5 units',
    charge: volume,
    quantity: '5.5',
    amount: '35.75',
    rounded: '35.75',
    details: [['5.5', '6.5', '0', '35.75']],
  },
  // Flat fees: graduated charges each tier entered; volume only the tier the total falls in; 0 units cost nothing.
  {
    name: 'graduated flat fees: 0 units',
    charge: { meter: 'm', model: 'graduated', tiers: withFees },
    quantity: 0,
    amount: '0',
    rounded: '0.00',
    details: [],
  },
  {
    name: 'graduated flat fees: at up_to',
    charge: { meter: 'm', model: 'graduated', tiers: withFees },
    quantity: 100,
    amount: '10',
    rounded: '10.00',
    details: [['100', '0', '10', '10']],
  },
  {
    name: 'graduated flat fees: one above',
    charge: { meter: 'm', model: 'graduated', tiers: withFees },
    quantity: 101,
    amount: '15.5',
    rounded: '15.50',
    details: [
      ['100', '0', '10', '10'],
      ['1', '0.5', '5', '5.5'],
    ],
  },
  {
    name: 'volume flat fee: 0 units',
    charge: { meter: 'm', model: 'volume', tiers: withFees },
    quantity: 0,
    amount: '0',
    rounded: '0.00',
    details: [],
  },
  {
    name: 'volume flat fee: at up_to',
    charge: { meter: 'm', model: 'volume', tiers: withFees },
    quantity: 100,
    amount: '10',
    rounded: '10.00',
    details: [['100', '0', '10', '10']],
  },
  {
    name: 'volume flat fee: one above',
    charge: { meter: 'm', model: 'volume', tiers: withFees },
    quantity: 101,
    amount: '55.5',
    rounded: '55.50',
    details: [['101', '0.5', '5', '55.5']],
  },
  // Per unit, including 10^12 units and unit prices of 10^-9.
  {
    name: 'per unit: 0 units',
    charge: { meter: 'm', model: 'per_unit', unit_price: '0.10' },
    quantity: 0,
    amount: '0',
    rounded: '0.00',
    details: [],
  },
  {
    name: 'per unit: 3 units',
    charge: { meter: 'm', model: 'per_unit', unit_price: '0.10' },
    quantity: 3,
    amount: '0.3',
    rounded: '0.30',
    details: [['3', '0.1', '0', '0.3']],
  },
  {
    name: 'per unit: 10^12 units at 10^-9',
    charge: { meter: 'm', model: 'per_unit', unit_price: '0.000000001' },
    quantity: 1_000_000_000_000,
    amount: '1000',
    rounded: '1000.00',
    details: [['1000000000000', '0.000000001', '0', '1000']],
  },
  {
    name: 'per unit: 7 units at 10^-9 keeps the exact amount',
    charge: { meter: 'm', model: 'per_unit', unit_price: '0.000000001' },
    quantity: 7,
    amount: '0.000000007',
    rounded: '0.00',
    details: [['7', '0.000000001', '0', '0.000000007']],
  },
  {
    name: 'per unit: 10^12 units at 0.0000123',
    charge: { meter: 'm', model: 'per_unit', unit_price: '0.0000123' },
    quantity: '1000000000000',
    amount: '12300000',
    rounded: '12300000.00',
    details: [['1000000000000', '0.0000123', '0', '12300000']],
  },
  {
    name: 'per unit: fractional GB-hours',
    charge: { meter: 'gb_hours', model: 'per_unit', unit_price: '0.0125' },
    quantity: '730.5',
    amount: '9.13125',
    rounded: '9.13',
    details: [['730.5', '0.0125', '0', '9.13125']],
  },
  {
    name: 'graduated: 10^12 units across a 10^-9 tier',
    charge: {
      meter: 'm',
      model: 'graduated',
      tiers: [
        { up_to: '1000000', unit_price: '0.001' },
        { up_to: null, unit_price: '0.000000001' },
      ],
    },
    quantity: 1_000_000_000_000,
    amount: '1999.999',
    rounded: '2000.00',
    details: [
      ['1000000', '0.001', '0', '1000'],
      ['999999000000', '0.000000001', '0', '999.999'],
    ],
  },
  // Package: price per started package, free units first.
  {
    name: 'package: 0 units',
    charge: { meter: 'm', model: 'package', package_size: '100', package_price: '5' },
    quantity: 0,
    amount: '0',
    rounded: '0.00',
    details: [],
  },
  {
    name: 'package: 1 unit starts a package',
    charge: { meter: 'm', model: 'package', package_size: '100', package_price: '5' },
    quantity: 1,
    amount: '5',
    rounded: '5.00',
    details: [['1', '5', '0', '5']],
  },
  {
    name: 'package: exactly one package',
    charge: { meter: 'm', model: 'package', package_size: '100', package_price: '5' },
    quantity: 100,
    amount: '5',
    rounded: '5.00',
    details: [['1', '5', '0', '5']],
  },
  {
    name: 'package: one above',
    charge: { meter: 'm', model: 'package', package_size: '100', package_price: '5' },
    quantity: 101,
    amount: '10',
    rounded: '10.00',
    details: [['2', '5', '0', '10']],
  },
  {
    name: 'package: fractional usage',
    charge: { meter: 'm', model: 'package', package_size: '100', package_price: '5' },
    quantity: '200.001',
    amount: '15',
    rounded: '15.00',
    details: [['3', '5', '0', '15']],
  },
  {
    name: 'package: within free units',
    charge: { meter: 'm', model: 'package', package_size: '100', package_price: '5', free_units: '50' },
    quantity: 50,
    amount: '0',
    rounded: '0.00',
    details: [['50', '0', '0', '0']],
  },
  {
    name: 'package: one above free units',
    charge: { meter: 'm', model: 'package', package_size: '100', package_price: '5', free_units: '50' },
    quantity: 51,
    amount: '5',
    rounded: '5.00',
    details: [
      ['50', '0', '0', '0'],
      ['1', '5', '0', '5'],
    ],
  },
  {
    name: 'package: free units then an exact package',
    charge: { meter: 'm', model: 'package', package_size: '100', package_price: '5', free_units: '50' },
    quantity: 150,
    amount: '5',
    rounded: '5.00',
    details: [
      ['50', '0', '0', '0'],
      ['1', '5', '0', '5'],
    ],
  },
  {
    name: 'package: fractional package size',
    charge: { meter: 'm', model: 'package', package_size: '0.5', package_price: '2' },
    quantity: '1.2',
    amount: '6',
    rounded: '6.00',
    details: [['3', '2', '0', '6']],
  },
  {
    name: 'package: 10^12 units in packages of 0.3',
    charge: { meter: 'm', model: 'package', package_size: '0.3', package_price: '0.000000001' },
    quantity: 1_000_000_000_000,
    amount: '3333.333333334',
    rounded: '3333.33',
    details: [['3333333333334', '0.000000001', '0', '3333.333333334']],
  },
  // Overage: included allowance, then per unit.
  {
    name: 'overage: 0 units',
    charge: { meter: 'm', model: 'overage', included_units: '1000', unit_price: '0.002' },
    quantity: 0,
    amount: '0',
    rounded: '0.00',
    details: [],
  },
  {
    name: 'overage: exactly the allowance',
    charge: { meter: 'm', model: 'overage', included_units: '1000', unit_price: '0.002' },
    quantity: 1000,
    amount: '0',
    rounded: '0.00',
    details: [['1000', '0', '0', '0']],
  },
  {
    name: 'overage: one above',
    charge: { meter: 'm', model: 'overage', included_units: '1000', unit_price: '0.002' },
    quantity: 1001,
    amount: '0.002',
    rounded: '0.00',
    details: [
      ['1000', '0', '0', '0'],
      ['1', '0.002', '0', '0.002'],
    ],
  },
  {
    name: 'overage: fractional',
    charge: { meter: 'm', model: 'overage', included_units: '1000', unit_price: '0.002' },
    quantity: '3500.5',
    amount: '5.001',
    rounded: '5.00',
    details: [
      ['1000', '0', '0', '0'],
      ['2500.5', '0.002', '0', '5.001'],
    ],
  },
  {
    name: 'overage: no allowance',
    charge: { meter: 'm', model: 'overage', included_units: '0', unit_price: '0.25' },
    quantity: 3,
    amount: '0.75',
    rounded: '0.75',
    details: [['3', '0.25', '0', '0.75']],
  },
];

function usageLine(plan: PricePlan, quantity: string | number): PriceLine {
  const [line, ...rest] = pricePlan(PricePlanSchema.parse(plan), { [plan.charges[0]!.meter]: quantity }).lines;
  assert.equal(rest.length, 0);
  assert.ok(line);
  return line;
}

describe('charge models: worked examples', () => {
  for (const c of cases) {
    test(c.name, () => {
      const line = usageLine({ currency: 'USD', charges: [c.charge] }, c.quantity);
      assert.equal(line.exact_amount, c.amount);
      assert.equal(line.amount, c.rounded);
      assert.deepEqual(
        line.breakdown.map((row) => [row.units, row.unit_price, row.flat_fee, row.amount]),
        c.details,
      );
    });
  }

  test('tier rows state their band and explain the arithmetic', () => {
    const line = usageLine(
      {
        currency: 'USD',
        charges: [{ ...graduated, tiers: [...publishedTiers.slice(0, 2), { up_to: null, unit_price: '6', flat_fee: '1' }] }],
      },
      12,
    );
    assert.deepEqual(
      line.breakdown.map(({ description, from, to }) => ({ description, from, to })),
      [
        { description: 'Tier 1 (above 0 up to 5): 5 × 7', from: '0', to: '5' },
        { description: 'Tier 2 (above 5 up to 10): 5 × 6.5', from: '5', to: '10' },
        { description: 'Tier 3 (above 10): 2 × 6 + 1 flat fee', from: '10', to: null },
      ],
    );
    assert.equal(line.description, 'seats: 12 units, graduated tiers');
    assert.equal(line.amount, '80.50');
  });
});

describe('currencies and rounding ties', () => {
  const perUnit = (unit_price: string): Charge => ({ meter: 'm', model: 'per_unit', unit_price });
  const table: { name: string; plan: Omit<PricePlan, 'charges'>; price: string; quantity: number; amount: string }[] = [
    { name: 'USD tie rounds half up by default', plan: { currency: 'USD' }, price: '0.005', quantity: 25, amount: '0.13' },
    { name: 'USD tie half even', plan: { currency: 'USD', rounding: 'half_even' }, price: '0.005', quantity: 25, amount: '0.12' },
    { name: 'JPY has no minor digits: 2.5 half up', plan: { currency: 'JPY' }, price: '0.5', quantity: 5, amount: '3' },
    { name: 'JPY 2.5 half even', plan: { currency: 'JPY', rounding: 'half_even' }, price: '0.5', quantity: 5, amount: '2' },
    {
      name: 'JPY 1.5 half even rounds up to even',
      plan: { currency: 'JPY', rounding: 'half_even' },
      price: '0.5',
      quantity: 3,
      amount: '2',
    },
    { name: 'JPY large amount', plan: { currency: 'JPY' }, price: '1.2', quantity: 1_000_000_000_000, amount: '1200000000000' },
    { name: 'KWD has three: 0.0005 half up', plan: { currency: 'KWD' }, price: '0.0005', quantity: 1, amount: '0.001' },
    { name: 'KWD 0.0005 half even', plan: { currency: 'KWD', rounding: 'half_even' }, price: '0.0005', quantity: 1, amount: '0.000' },
    { name: 'KWD 0.0015 half even', plan: { currency: 'KWD', rounding: 'half_even' }, price: '0.0005', quantity: 3, amount: '0.002' },
    { name: 'KWD no tie', plan: { currency: 'KWD' }, price: '0.1234', quantity: 10, amount: '1.234' },
  ];
  for (const c of table) {
    test(c.name, () => {
      assert.equal(usageLine({ ...c.plan, charges: [perUnit(c.price)] }, c.quantity).amount, c.amount);
    });
  }

  test('the total is the sum of rounded lines, not the rounded sum', () => {
    const charges: Charge[] = ['a', 'b', 'c'].map((meter) => ({ meter, model: 'per_unit', unit_price: '0.005' }));
    const priced = pricePlan({ currency: 'USD', charges }, { a: 1, b: 1, c: 1 });
    assert.deepEqual(
      priced.lines.map((l) => [l.exact_amount, l.amount]),
      [
        ['0.005', '0.01'],
        ['0.005', '0.01'],
        ['0.005', '0.01'],
      ],
    );
    assert.equal(priced.totals.charges, '0.03');
    assert.equal(priced.totals.total, '0.03');
  });
});

describe('plan steps: base fee and minimum commitment', () => {
  const tenEach: Charge = { meter: 'api_calls', model: 'per_unit', unit_price: '10' };

  test('true-up tops base fee and charges up to the commitment (Lago: $50 + 3 × $10 = $80, commitment $100)', () => {
    const priced = pricePlan(
      { id: 'pro', currency: 'USD', base_fee: '50', minimum_commitment: '100', charges: [tenEach] },
      { api_calls: 3 },
    );
    assert.deepEqual(
      priced.lines.map((l) => [l.type, l.amount]),
      [
        ['base_fee', '50.00'],
        ['usage', '30.00'],
        ['minimum_commitment_true_up', '20.00'],
      ],
    );
    assert.equal(priced.lines[2]!.description, 'Minimum commitment 100 USD; base fee and charges come to 80.00');
    assert.deepEqual(priced.totals, { base_fee: '50.00', charges: '30.00', minimum_commitment_true_up: '20.00', total: '100.00' });
    assert.equal(priced.plan_id, 'pro');
    assert.equal(priced.rounding, 'half_up');
  });

  test('no true-up line once the commitment is met', () => {
    const priced = pricePlan({ currency: 'USD', base_fee: '50', minimum_commitment: '100', charges: [tenEach] }, { api_calls: 6 });
    assert.deepEqual(
      priced.lines.map((l) => l.type),
      ['base_fee', 'usage'],
    );
    assert.deepEqual(priced.totals, { base_fee: '50.00', charges: '60.00', minimum_commitment_true_up: '0.00', total: '110.00' });
  });

  test('the true-up compares against rounded lines, so the invoice still adds up', () => {
    const priced = pricePlan(
      { currency: 'USD', minimum_commitment: '1', charges: [{ meter: 'a', model: 'per_unit', unit_price: '0.333' }] },
      { a: 1 },
    );
    assert.deepEqual(
      priced.lines.map((l) => [l.exact_amount, l.amount]),
      [
        ['0.333', '0.33'],
        ['0.67', '0.67'],
      ],
    );
    assert.equal(priced.totals.total, '1.00');
  });

  test('a meter absent from usage is a zero line; no usage at all leaves base fee and true-up', () => {
    const priced = pricePlan({ currency: 'EUR', base_fee: '9.99', minimum_commitment: '25', charges: [tenEach] }, {});
    assert.deepEqual(
      priced.lines.map((l) => [l.type, l.quantity, l.description, l.amount]),
      [
        ['base_fee', null, 'Base fee', '9.99'],
        ['usage', '0', 'api_calls: 0 units, per unit (no usage)', '0.00'],
        ['minimum_commitment_true_up', null, 'Minimum commitment 25 EUR; base fee and charges come to 9.99', '15.01'],
      ],
    );
    assert.equal(priced.totals.total, '25.00');
  });

  test('a plan with only a base fee in a zero-decimal currency', () => {
    const priced = pricePlan({ currency: 'JPY', base_fee: '1500', charges: [] }, {});
    assert.deepEqual(priced.totals, { base_fee: '1500', charges: '0', minimum_commitment_true_up: '0', total: '1500' });
  });
});

describe('quantities and refusals', () => {
  const plan: PricePlan = { currency: 'USD', charges: [graduated] };

  test('string and integer quantities give identical results', () => {
    assert.deepEqual(pricePlan(plan, { seats: 12 }), pricePlan(plan, { seats: '12' }));
    assert.deepEqual(pricePlan(plan, { seats: 12 }), pricePlan(plan, { seats: '12.000' }));
  });

  test('usage for a meter the plan does not price is refused, not dropped', () => {
    assert.throws(
      () => pricePlan(plan, { seats: 1, seat: 2 }),
      (err: unknown) => err instanceof PricingError && /no charge for usage on: seat$/.test(err.message),
    );
  });

  test('negative and malformed quantities are refused', () => {
    assert.throws(() => pricePlan(plan, { seats: '-1' }), /usage for meter "seats" is negative/);
    assert.throws(() => pricePlan(plan, { seats: 1.5 }), /is not a decimal/);
    assert.throws(() => pricePlan(plan, { seats: '1e3' }), /is not a decimal/);
  });
});
