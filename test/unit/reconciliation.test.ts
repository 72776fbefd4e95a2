import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BilledLine } from '../../src/domain/invoice-adjustments';
import { planSchema } from '../../src/domain/plan';
import { pricePlan } from '../../src/domain/pricing/price-plan';
import {
  compareCharges,
  compareInvoice,
  invoicedPeriods,
  type ChargeComparison,
  type InvoiceComparison,
} from '../../src/domain/reconciliation';
import { ReconciliationInputError, parseReconciliationInput } from '../../src/domain/reconciliation-input';

// 1.00 base + graduated calls (100 at 0.015, then 0.0125), a minimum of 2.00, and a meter that is limited but not charged.
const plan = planSchema({ knownMeters: new Set(['api_calls', 'seats']) }).parse({
  id: 'p',
  name: 'P',
  currency: 'USD',
  base_fee: '1.00',
  minimum_commitment: '2.00',
  charges: [
    {
      meter: 'api_calls',
      model: 'graduated',
      tiers: [
        { up_to: '100', unit_price: '0.015' },
        { up_to: null, unit_price: '0.0125' },
      ],
    },
  ],
  limits: [{ meter: 'seats', hard_limit: '10', at_hard_limit: 'allow' }],
  interval: { kind: 'calendar_month' },
});
const period = { start: '2026-01-01T00:00:00.000Z', end: '2026-02-01T00:00:00.000Z' };

/** An invoice exactly as the invoice path would have written it for this usage. */
function invoiced(usage: Record<string, string>) {
  const priced = pricePlan(plan, { api_calls: usage.api_calls ?? '0' });
  return {
    currency: 'USD' as const,
    kind: 'period' as const,
    period,
    usage,
    total: priced.totals.total,
    lines: priced.lines as BilledLine[],
  };
}

const compare = (over: Partial<InvoiceComparison> & Pick<InvoiceComparison, 'recomputed'>) =>
  compareInvoice({
    invoice: invoiced({ api_calls: '120', seats: '3' }),
    plan,
    laterAdjustments: [],
    credited: '0',
    adjustable: false,
    interimBilled: [],
    ...over,
  });
const brief = (found: ReturnType<typeof compareInvoice>) => found.map((f) => [f.kind, f.subject, f.correction, f.settled]);

describe('reconciliation input (typed by hand in the Temporal UI)', () => {
  test('dates and instants with an offset are accepted; customer and auto_approve are optional', () => {
    assert.deepEqual(parseReconciliationInput({ period_start: '2026-11-01', period_end: '2026-12-01' }), {
      start: new Date('2026-11-01T00:00:00Z'),
      end: new Date('2026-12-01T00:00:00Z'),
      customer: null,
      autoApprove: false,
    });
    assert.deepEqual(
      parseReconciliationInput({
        period_start: '2026-11-01T01:00:00+01:00',
        period_end: '2026-11-02T00:00:00Z',
        customer: 'acme',
        auto_approve: true,
      }),
      {
        start: new Date('2026-11-01T00:00:00Z'),
        end: new Date('2026-11-02T00:00:00Z'),
        customer: 'acme',
        autoApprove: true,
      },
    );
  });

  const refused: Array<[string, unknown, RegExp]> = [
    ['not an object', '2026-11', /JSON object/],
    ['no period_end', { period_start: '2026-11-01' }, /period_end must be a date/],
    ['an instant without offset', { period_start: '2026-11-01T00:00:00', period_end: '2026-12-01' }, /period_start must be/],
    ['a number', { period_start: 1, period_end: '2026-12-01' }, /period_start must be/],
    ['an impossible date', { period_start: '2026-02-30', period_end: '2026-12-01' }, /period_start must be/],
    ['an empty range', { period_start: '2026-12-01', period_end: '2026-12-01' }, /after period_start/],
    ['a misspelt field', { period_start: '2026-11-01', period_end: '2026-12-01', autoApprove: true }, /unknown field\(s\): autoApprove/],
    ['auto_approve as text', { period_start: '2026-11-01', period_end: '2026-12-01', auto_approve: 'yes' }, /true or false/],
    ['an empty customer', { period_start: '2026-11-01', period_end: '2026-12-01', customer: '' }, /external id/],
  ];
  for (const [name, input, message] of refused) {
    test(`refused: ${name}`, () => {
      assert.throws(
        () => parseReconciliationInput(input),
        (err: unknown) => err instanceof ReconciliationInputError && message.test(err.message),
      );
    });
  }
});

describe('an invoice against its period repriced from the raw events', () => {
  test('the same usage: nothing found', () => {
    assert.deepEqual(compare({ recomputed: { api_calls: '120', seats: '3' } }), []);
  });

  test('usage beyond the lookback: a usage mismatch and the amount owed by the customer', () => {
    // Billed 1.00 + 1.50 + 0.25 = 2.75; 150 calls cost 1.00 + 1.50 + 0.625 → 0.63 = 3.13.
    const found = compare({ recomputed: { api_calls: '150', seats: '3' } });
    assert.deepEqual(brief(found), [
      ['usage_mismatch', 'api_calls', null, false],
      ['amount_mismatch', null, '-0.38', false],
    ]);
    assert.deepEqual(found[0]!.expected, { quantity: '150' });
    assert.deepEqual(found[0]!.actual, { quantity: '120', invoiced: '120', adjusted: '0' });
    assert.equal(found[1]!.expected.total, '3.13');
    assert.equal(found[1]!.actual.total, '2.75');
    assert.match(found[1]!.description, /0\.38 USD owed by the customer/);
  });

  test('usage within the lookback is left to the next invoice, except on a meter nothing charges', () => {
    assert.deepEqual(brief(compare({ recomputed: { api_calls: '150', seats: '3' }, adjustable: true })), []);
    assert.deepEqual(brief(compare({ recomputed: { api_calls: '120', seats: '4' }, adjustable: true })), [
      ['usage_mismatch', 'seats', null, false],
    ]);
  });

  test('adjustment lines billed later count as billed', () => {
    const laterAdjustments: BilledLine[] = [{ type: 'adjustment', meter: 'api_calls', quantity: '30', amount: '0.38' }];
    assert.deepEqual(compare({ recomputed: { api_calls: '150', seats: '3' }, laterAdjustments }), []);
    // Twice the same late usage billed: the second adjustment is owed back.
    assert.deepEqual(
      brief(compare({ recomputed: { api_calls: '150', seats: '3' }, laterAdjustments: [...laterAdjustments, ...laterAdjustments] })),
      [
        ['usage_mismatch', 'api_calls', null, false],
        ['amount_mismatch', null, '0.38', false],
      ],
    );
  });

  test('credit notes issued earlier settle the amount; a later adjustment for the same usage is then owed back', () => {
    assert.deepEqual(brief(compare({ recomputed: { api_calls: '150', seats: '3' }, credited: '-0.38' })), [
      ['usage_mismatch', 'api_calls', null, false],
      ['amount_mismatch', null, null, true],
    ]);
    const laterAdjustments: BilledLine[] = [{ type: 'adjustment', meter: 'api_calls', quantity: '30', amount: '0.38' }];
    assert.deepEqual(brief(compare({ recomputed: { api_calls: '150', seats: '3' }, laterAdjustments, credited: '-0.38' })), [
      ['amount_mismatch', null, '0.38', false],
    ]);
    // Partly settled: only the rest is owed.
    assert.deepEqual(brief(compare({ recomputed: { api_calls: '150', seats: '3' }, credited: '-0.30' })).at(-1), [
      'amount_mismatch',
      null,
      '-0.08',
      false,
    ]);
  });

  test('a total that does not match its own lines is owed back or owed by the difference', () => {
    const invoice = { ...invoiced({ api_calls: '120', seats: '3' }), total: '27.50' };
    const found = compare({ invoice, recomputed: { api_calls: '120', seats: '3' } });
    assert.deepEqual(brief(found), [['amount_mismatch', null, '24.75', false]]);
    assert.deepEqual(found[0]!.expected.lines, { base_fee: '1.00', 'meter:api_calls': '1.75' });
  });

  test('a total with more digits than the currency has is reported exactly, not rounded away', () => {
    const invoice = { ...invoiced({ api_calls: '120', seats: '3' }), total: '2.755' };
    assert.deepEqual(brief(compare({ invoice, recomputed: { api_calls: '120', seats: '3' } })), [
      ['amount_mismatch', null, '0.005', false],
    ]);
  });

  test('lines that differ while the total matches are reported, with nothing to credit', () => {
    const invoice = invoiced({ api_calls: '120', seats: '3' });
    const lines = invoice.lines.map((l) =>
      l.type === 'base_fee' ? { ...l, amount: '0.50' } : l.type === 'usage' ? { ...l, amount: '2.25' } : l,
    );
    const found = compare({ invoice: { ...invoice, lines }, recomputed: { api_calls: '120', seats: '3' } });
    assert.deepEqual(brief(found), [['amount_mismatch', null, null, false]]);
    assert.match(found[0]!.description, /lines differ \(base_fee, meter:api_calls\)/);
  });

  test('the minimum commitment is repriced too: late usage that removes the true-up changes only the total owed', () => {
    // 10 calls: 1.00 + 0.15, true-up 0.85 → 2.00. 80 calls: 1.00 + 1.20 = 2.20, no true-up.
    const invoice = invoiced({ api_calls: '10', seats: '0' });
    const found = compare({ invoice, recomputed: { api_calls: '80' } });
    assert.deepEqual(brief(found), [
      ['usage_mismatch', 'api_calls', null, false],
      ['amount_mismatch', null, '-0.20', false],
    ]);
    assert.deepEqual(found[1]!.actual.lines, { base_fee: '1.00', 'meter:api_calls': '0.15', minimum_commitment_true_up: '0.85' });
  });
});

describe("our charges against the provider's", () => {
  const charge = (id: string, status: 'succeeded' | 'declined' = 'succeeded', amountMinor = '275') => ({
    id,
    status,
    amountMinor,
    currency: 'USD',
  });
  const compareWith = (over: Partial<ChargeComparison>) =>
    compareCharges({
      invoice: { status: 'paid', currency: 'USD' },
      recorded: 'ch_1',
      provider: [charge('ch_1')],
      credited: { collection: '0', all: '0' },
      ...over,
    });
  const cases: Array<[string, Partial<ChargeComparison>, Array<[string, string | null, boolean]>]> = [
    ['one charge, recorded', {}, []],
    ['declines before the success do not count', { provider: [charge('ch_0', 'declined'), charge('ch_1')] }, []],
    ['no charge yet', { invoice: { status: 'finalized', currency: 'USD' }, recorded: null, provider: [] }, []],
    ['recorded, absent at the provider', { provider: [charge('ch_0', 'declined')] }, [['charge_missing_at_provider', null, false]]],
    [
      'collected, not recorded',
      { invoice: { status: 'finalized', currency: 'USD' }, recorded: null },
      [['charge_unrecorded', null, false]],
    ],
    ['charged twice', { provider: [charge('ch_1'), charge('ch_2')] }, [['double_charge', '2.75', false]]],
    [
      'charged twice, refunded by a credit note',
      { provider: [charge('ch_1'), charge('ch_2')], credited: { collection: '2.75', all: '2.75' } },
      [['double_charge', null, true]],
    ],
    [
      'charged twice, neither recorded',
      { recorded: null, provider: [charge('ch_1'), charge('ch_2', 'succeeded', '300')] },
      [
        ['double_charge', '3.00', false],
        ['charge_unrecorded', null, false],
      ],
    ],
    [
      'a void invoice that was charged',
      { invoice: { status: 'void', currency: 'USD' }, recorded: null },
      [['charged_void_invoice', '2.75', false]],
    ],
    // A supplemental charge owed earlier (-0.38) is cancelled with the void: everything collected plus that debt goes back.
    [
      'a void invoice, with an earlier credit note',
      { invoice: { status: 'void', currency: 'USD' }, credited: { collection: '0', all: '-0.38' } },
      [['charged_void_invoice', '3.13', false]],
    ],
    [
      'a void invoice, never charged',
      { invoice: { status: 'void', currency: 'USD' }, recorded: null, provider: [charge('ch_1', 'declined')] },
      [],
    ],
  ];
  for (const [name, over, expected] of cases) {
    test(name, () => {
      assert.deepEqual(
        compareWith(over).map((f) => [f.kind, f.correction, f.settled]),
        expected,
      );
    });
  }

  test("amounts in minor units are converted with the currency's own digits", () => {
    const found = compareCharges({
      invoice: { status: 'paid', currency: 'JPY' },
      recorded: 'a',
      provider: [
        { id: 'a', status: 'succeeded', amountMinor: '1500', currency: 'JPY' },
        { id: 'b', status: 'succeeded', amountMinor: '1500', currency: 'JPY' },
      ],
      credited: { collection: '0', all: '0' },
    });
    assert.equal(found[0]!.correction, '1500');
  });
});

describe('the periods that must have an invoice', () => {
  const hourly = { kind: 'duration' as const, iso: 'PT1H' };
  const at = (iso: string) => new Date(iso);
  const starts = (periods: { start: Date; end: Date }[]) =>
    periods.map((p) => [p.start.toISOString().slice(11, 16), p.end.toISOString().slice(11, 16)]);
  const scope = { start: at('2026-01-01T00:00:00Z'), end: at('2026-01-01T04:00:00Z') };

  test('periods starting in the scope and ended by then', () => {
    const subscription = { anchor: at('2026-01-01T00:30:00Z'), interval: hourly, endsAt: null };
    assert.deepEqual(starts(invoicedPeriods(subscription, scope, at('2026-01-02T00:00:00Z'))), [
      ['00:30', '01:30'],
      ['01:30', '02:30'],
      ['02:30', '03:30'],
      ['03:30', '04:30'],
    ]);
    // The period in progress has no invoice yet.
    assert.deepEqual(starts(invoicedPeriods(subscription, scope, at('2026-01-01T02:00:00Z'))), [['00:30', '01:30']]);
  });

  test('a subscription from before the scope starts at its first period inside it; a cancellation cuts the last one short', () => {
    const subscription = { anchor: at('2025-12-31T23:15:00Z'), interval: hourly, endsAt: at('2026-01-01T02:40:00Z') };
    assert.deepEqual(starts(invoicedPeriods(subscription, scope, at('2026-01-02T00:00:00Z'))), [
      ['00:15', '01:15'],
      ['01:15', '02:15'],
      ['02:15', '02:40'],
    ]);
  });

  test('a billing anchor: the first period from the start to its next boundary, then whole periods on it', () => {
    const subscription = { anchor: at('2026-01-01T00:30:00Z'), billingAnchor: at('2025-12-01T00:00:00Z'), interval: hourly, endsAt: null };
    assert.deepEqual(starts(invoicedPeriods(subscription, scope, at('2026-01-01T03:10:00Z'))), [
      ['00:30', '01:00'],
      ['01:00', '02:00'],
      ['02:00', '03:00'],
    ]);
    // A scope starting after the start: whole periods from the first inside it.
    const later = { start: at('2026-01-01T00:45:00Z'), end: scope.end };
    assert.deepEqual(starts(invoicedPeriods(subscription, later, at('2026-01-02T00:00:00Z'))), [
      ['01:00', '02:00'],
      ['02:00', '03:00'],
      ['03:00', '04:00'],
    ]);
  });

  test('monthly periods anchored on the 31st', () => {
    const subscription = { anchor: at('2026-01-31T00:00:00Z'), interval: { kind: 'calendar_month' as const }, endsAt: null };
    const periods = invoicedPeriods(
      subscription,
      { start: at('2026-02-01T00:00:00Z'), end: at('2026-04-01T00:00:00Z') },
      at('2026-06-01T00:00:00Z'),
    );
    assert.deepEqual(
      periods.map((p) => p.start.toISOString().slice(0, 10)),
      ['2026-02-28', '2026-03-31'],
    );
  });

  test('a subscription that starts after the scope, or is canceled before it, has none', () => {
    assert.deepEqual(
      invoicedPeriods({ anchor: at('2026-01-01T05:00:00Z'), interval: hourly, endsAt: null }, scope, at('2026-02-01T00:00:00Z')),
      [],
    );
    assert.deepEqual(
      invoicedPeriods(
        { anchor: at('2025-12-01T00:00:00Z'), interval: hourly, endsAt: at('2025-12-31T00:00:00Z') },
        scope,
        at('2026-02-01T00:00:00Z'),
      ),
      [],
    );
  });
});
