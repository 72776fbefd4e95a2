import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  applyCredits,
  creditsOnInvoice,
  drawOrder,
  isNotCredit,
  spendTopUpDue,
  type GrantAvailable,
} from '../../src/domain/credit-drawdown';
import { compareCreditBalance, compareInvoiceCredits, type LedgerEntrySeen } from '../../src/domain/credit-reconciliation';

const day = (d: number) => new Date(Date.UTC(2026, 0, d));
const grant = (id: string, remaining: string, over: Partial<GrantAvailable> = {}): GrantAvailable => ({
  id,
  priority: 0,
  expiresAt: null,
  createdAt: day(1),
  remaining,
  ...over,
});

describe('credit drawdown order', () => {
  // Worked table: each row lists the grants, and the ids in the order they must be drawn.
  const cases: Array<{ name: string; grants: GrantAvailable[]; order: string[] }> = [
    {
      name: 'lower priority number first, whatever the expiry or age',
      grants: [grant('a', '1', { priority: 5, expiresAt: day(2) }), grant('b', '1', { priority: 1, createdAt: day(9) })],
      order: ['b', 'a'],
    },
    {
      name: 'same priority: earliest expiry first; a grant that never expires last',
      grants: [grant('never', '1'), grant('late', '1', { expiresAt: day(20) }), grant('soon', '1', { expiresAt: day(10) })],
      order: ['soon', 'late', 'never'],
    },
    {
      name: 'same priority and expiry: oldest first',
      grants: [grant('new', '1', { createdAt: day(5) }), grant('old', '1', { createdAt: day(2) })],
      order: ['old', 'new'],
    },
    {
      name: 'full tie: by id, so the order is total and replays the same',
      grants: [grant('b', '1'), grant('a', '1')],
      order: ['a', 'b'],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.deepEqual(
        [...c.grants].sort(drawOrder).map((g) => g.id),
        c.order,
      );
      const drawn = applyCredits({ currency: 'USD', due: '100.00', grants: c.grants, settlement: 'credit_then_invoice' });
      assert.deepEqual(
        drawn.drawdowns.map((d) => d.grantId),
        c.order,
      );
    });
  }
});

describe('applying credits to an amount due', () => {
  const grants = [grant('promo', '10.00', { priority: 0, expiresAt: day(31) }), grant('bought', '50.00', { priority: 1 })];
  // Worked table: due → drawdowns (grant: amount), applied, amount due.
  const cases: Array<{ due: string; drawdowns: Array<[string, string]>; applied: string; amountDue: string }> = [
    { due: '0.00', drawdowns: [], applied: '0.00', amountDue: '0.00' },
    { due: '0.01', drawdowns: [['promo', '0.01']], applied: '0.01', amountDue: '0.00' },
    { due: '10.00', drawdowns: [['promo', '10.00']], applied: '10.00', amountDue: '0.00' },
    {
      due: '10.01',
      drawdowns: [
        ['promo', '10.00'],
        ['bought', '0.01'],
      ],
      applied: '10.01',
      amountDue: '0.00',
    },
    {
      due: '72.50',
      drawdowns: [
        ['promo', '10.00'],
        ['bought', '50.00'],
      ],
      applied: '60.00',
      amountDue: '12.50',
    },
    // A negative total (late usage credited back) draws nothing.
    { due: '-3.00', drawdowns: [], applied: '0.00', amountDue: '-3.00' },
  ];
  for (const c of cases) {
    test(`due ${c.due}`, () => {
      const result = applyCredits({ currency: 'USD', due: c.due, grants, settlement: 'credit_then_invoice' });
      assert.deepEqual(
        result.drawdowns.map((d) => [d.grantId, d.amount]),
        c.drawdowns,
      );
      assert.equal(result.applied, c.applied);
      assert.equal(result.amountDue, c.amountDue);
      assert.equal(result.shortfall, null);
    });
  }

  test('grants with nothing left are skipped', () => {
    const result = applyCredits({
      currency: 'USD',
      due: '5.00',
      grants: [grant('empty', '0'), grant('full', '9.00', { priority: 3 })],
      settlement: 'credit_then_invoice',
    });
    assert.deepEqual(result.drawdowns, [{ grantId: 'full', amount: '5.00' }]);
  });

  test('credit_only: a remainder credits do not cover is the shortfall, still due (invoiced as overage)', () => {
    const covered = applyCredits({ currency: 'USD', due: '60.00', grants, settlement: 'credit_only' });
    assert.equal(covered.shortfall, null);
    const short = applyCredits({ currency: 'USD', due: '61.25', grants, settlement: 'credit_only' });
    assert.equal(short.amountDue, '1.25');
    assert.equal(short.shortfall, '1.25');
  });
});

describe('rounding: amounts stay in minor units of the currency', () => {
  test('currencies with 0 and 3 minor digits are formatted with exactly those digits', () => {
    const yen = applyCredits({ currency: 'JPY', due: '1500', grants: [grant('g', '1000')], settlement: 'credit_then_invoice' });
    assert.deepEqual([yen.applied, yen.amountDue], ['1000', '500']);
    const dinar = applyCredits({ currency: 'KWD', due: '1.5', grants: [grant('g', '0.125')], settlement: 'credit_then_invoice' });
    assert.deepEqual([dinar.applied, dinar.amountDue], ['0.125', '1.375']);
  });

  test('an amount finer than the minor unit is refused, never silently rounded', () => {
    assert.throws(
      () => applyCredits({ currency: 'USD', due: '10.00', grants: [grant('g', '0.005')], settlement: 'credit_then_invoice' }),
      /more than 2 decimal places/,
    );
  });
});

describe('credit lines on an invoice', () => {
  const lines = [
    { type: 'usage', amount: '72.50' },
    { type: 'credit', amount: '-60.00' },
  ];
  test('what credits paid, and the lines repricing compares', () => {
    assert.equal(creditsOnInvoice(lines).toFixed(2), '60.00');
    assert.deepEqual(lines.filter(isNotCredit), [{ type: 'usage', amount: '72.50' }]);
  });
});

describe('credit ledger reconciliation', () => {
  const entry = (
    id: string,
    grantId: string,
    kind: LedgerEntrySeen['kind'],
    amount: string,
    balanceAfter: string,
    invoiceId: string | null = null,
  ) => ({
    id,
    grantId,
    kind,
    amount,
    balanceAfter,
    invoiceId,
  });
  const ledger = [entry('1', 'g', 'grant', '50.00', '50.00'), entry('2', 'g', 'drawdown', '-20.00', '30.00', 'inv')];

  test('a ledger whose running balances add up and whose grants are whole has no finding', () => {
    assert.deepEqual(compareCreditBalance('USD', ledger, [{ id: 'g', amount: '50.00', status: 'active' }]), []);
  });

  test('a running balance that is not the sum of the entries before it is a balance mismatch', () => {
    const [found] = compareCreditBalance(
      'USD',
      [ledger[0]!, { ...ledger[1]!, balanceAfter: '31.00' }],
      [{ id: 'g', amount: '50.00', status: 'active' }],
    );
    assert.equal(found?.kind, 'credit_balance_mismatch');
    assert.match(found!.description, /entry 2 records a balance of 31.00; the entries up to it sum to 30/);
  });

  test('an active grant missing from the ledger, or drawn below zero, is a balance mismatch', () => {
    assert.equal(compareCreditBalance('USD', [], [{ id: 'g', amount: '5.00', status: 'active' }])[0]?.kind, 'credit_balance_mismatch');
    const overdrawn = [entry('1', 'g', 'grant', '5.00', '5.00'), entry('2', 'g', 'drawdown', '-6.00', '-1.00', 'inv')];
    assert.equal(compareCreditBalance('USD', overdrawn, [{ id: 'g', amount: '5.00', status: 'active' }]).length, 1);
  });

  // Worked table: invoice status and credit line against its entries.
  const drawdown = entry('2', 'g', 'drawdown', '-20.00', '30.00', 'inv');
  const reversal = entry('3', 'g', 'void', '20.00', '50.00', 'inv');
  const cases: Array<{ name: string; status: string; creditLine: string; entries: LedgerEntrySeen[]; kind: string | null }> = [
    { name: 'finalized, line matches the drawdowns', status: 'finalized', creditLine: '20.00', entries: [drawdown], kind: null },
    { name: 'paid, line differs', status: 'paid', creditLine: '15.00', entries: [drawdown], kind: 'credit_drawdown_mismatch' },
    { name: 'credit line without any drawdown', status: 'finalized', creditLine: '5.00', entries: [], kind: 'credit_drawdown_mismatch' },
    { name: 'drawdown on a draft', status: 'draft', creditLine: '0', entries: [drawdown], kind: 'credit_drawdown_mismatch' },
    { name: 'void and reversed', status: 'void', creditLine: '20.00', entries: [drawdown, reversal], kind: null },
    { name: 'void, not reversed', status: 'void', creditLine: '20.00', entries: [drawdown], kind: 'credit_drawdown_on_void_invoice' },
    {
      name: 'reversed but not void',
      status: 'finalized',
      creditLine: '20.00',
      entries: [drawdown, reversal],
      kind: 'credit_drawdown_mismatch',
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const found = compareInvoiceCredits({ id: 'inv', status: c.status, creditLine: c.creditLine }, c.entries);
      assert.deepEqual(
        found.map((f) => f.kind),
        c.kind ? [c.kind] : [],
      );
    });
  }
});

describe('automatic top-up of a credit_only period', () => {
  test('due when the credit left is below the threshold or gone, not before', () => {
    // [available, spent, threshold, due]
    const table: [string, string, string, boolean][] = [
      ['10.00', '4.00', '5.00', false], // 6.00 left
      ['10.00', '5.00', '5.00', false], // exactly the threshold
      ['10.00', '5.01', '5.00', true],
      ['10.00', '10.00', '0', true], // nothing left, even with a zero threshold
      ['10.00', '12.50', '0', true], // overspent
      ['0', '0', '0', true],
    ];
    for (const [available, spent, threshold, due] of table) {
      assert.equal(spendTopUpDue(available, spent, threshold), due, `${available} − ${spent} against ${threshold}`);
    }
  });
});
