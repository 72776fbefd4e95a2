import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { defaultActivityInfo, MockActivityEnvironment } from '@temporalio/testing';
import { createDraftInterimInvoice } from '../../src/activities/draft-interim-invoice';
import { createDraftInvoice } from '../../src/activities/draft-invoice';
import { createFinalizeInvoice } from '../../src/activities/finalize-invoice';
import { systemClock } from '../../src/clock';
import { appendLedgerEntry, creditBalance, insertGrant, lockCreditLedger } from '../../src/credits/store';
import { createCustomer } from '../../src/customers/store';
import { inTransaction } from '../../src/db/transaction';
import { planSchema } from '../../src/domain/plan';
import { createMeter } from '../../src/meters/store';
import { createPlan } from '../../src/plans/store';
import { createSubscription } from '../../src/subscriptions/store';
import { creditOnlyMoney, leastAvailable, spendCapMoney, type SpendSubject } from '../../src/spend/available-money';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { storeEvents } from '../support/usage-events';

/*
 * What a spend limit may reach when credits are involved, on a real ledger: the credit balance
 * for a plan settling credit_only (nothing for credit_then_invoice), and the lower of it and the
 * spend cap when the subscription has both; credit an interim invoice of the period drew counts
 * once (its usage is in the period's spend).
 */
let db: TestDatabase;
let customerId: string;
const P1 = new Date('2026-01-01T00:00:00Z');
const P2 = new Date('2026-02-01T00:00:00Z');

before(async () => {
  db = await createTestDatabase();
  ({
    customer: { id: customerId },
  } = await createCustomer(db.pool, { external_id: 'acme', name: 'Acme', currency: 'USD' }, 'system'));
  // Two USD grants: the balance is their ledger sum, 5.25 (and 3.00 EUR beside it).
  await inTransaction(db.pool, async (client) => {
    const now = new Date();
    const grant = async (reference: string, currency: 'USD' | 'EUR', amount: string) => {
      const { grant: g } = await insertGrant(
        client,
        { customerId, reference, source: 'promotional', currency, amount, priority: 0, expiresAt: null, actor: 'system' },
        (id) => `key-${id}`,
        now,
      );
      await lockCreditLedger(client, customerId, currency);
      await appendLedgerEntry(
        client,
        { grantId: g.id, customerId, currency, kind: 'grant', amount, invoiceId: null, actor: 'system' },
        now,
      );
    };
    await grant('welcome', 'USD', '5.00');
    await grant('bonus', 'USD', '0.25');
    await grant('euro', 'EUR', '3.00');
  });
});
after(async () => {
  await db?.drop();
});

const subject = (over: Partial<SpendSubject>): SpendSubject => ({
  customerId,
  currency: 'USD',
  periodStart: P1,
  spendCap: null,
  settlement: 'credit_only',
  ...over,
});
const least = async (over: Partial<SpendSubject>) => {
  const found = await leastAvailable([spendCapMoney, creditOnlyMoney(db.pool)], subject(over));
  return found && { amount: found.amount.toFixed(), source: found.source };
};

describe('creditOnlyMoney', () => {
  test('credit_only: the ledger balance in the plan currency', async () => {
    assert.equal((await creditOnlyMoney(db.pool).available(subject({})))?.toFixed(), '5.25');
    assert.equal((await creditOnlyMoney(db.pool).available(subject({ currency: 'EUR' })))?.toFixed(), '3');
    assert.equal((await creditOnlyMoney(db.pool).available(subject({ currency: 'JPY' })))?.toFixed(), '0', 'no credit: nothing to spend');
  });
  test('credit_then_invoice: credits do not limit usage', async () => {
    assert.equal(await creditOnlyMoney(db.pool).available(subject({ settlement: 'credit_then_invoice' })), null);
  });
});

describe('leastAvailable: the lower of the spend cap and the credit balance', () => {
  const cases: Array<{ name: string; over: Partial<SpendSubject>; expected: { amount: string; source: string } | null }> = [
    { name: 'credits only', over: {}, expected: { amount: '5.25', source: 'credits' } },
    { name: 'a cap below the balance', over: { spendCap: { amount: '5.00' } }, expected: { amount: '5', source: 'spend_cap' } },
    { name: 'a cap above the balance', over: { spendCap: { amount: '5.26' } }, expected: { amount: '5.25', source: 'credits' } },
    // Equal: the first source listed (the cap) names it.
    { name: 'a cap equal to the balance', over: { spendCap: { amount: '5.25' } }, expected: { amount: '5.25', source: 'spend_cap' } },
    {
      name: 'credit_then_invoice with a cap: the cap alone',
      over: { settlement: 'credit_then_invoice', spendCap: { amount: '100.00' } },
      expected: { amount: '100', source: 'spend_cap' },
    },
    { name: 'credit_then_invoice without a cap: no limit', over: { settlement: 'credit_then_invoice' }, expected: null },
    {
      name: 'no credit in the currency: zero',
      over: { currency: 'JPY', spendCap: { amount: '500' } },
      expected: { amount: '0', source: 'credits' },
    },
  ];
  for (const c of cases) test(c.name, async () => assert.deepEqual(await least(c.over), c.expected));
});

describe('creditOnlyMoney with progressive billing', () => {
  test("what the period's interim invoice drew is added back, for that period only", async () => {
    const { meter } = await createMeter(
      db.pool,
      { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} },
      'system',
    );
    const plan = planSchema({ knownMeters: new Set(['api_calls']) }).parse({
      id: 'prepaid',
      name: 'Prepaid',
      currency: 'USD',
      charges: [{ meter: 'api_calls', model: 'per_unit', unit_price: '0.01' }],
      interval: { kind: 'calendar_month' },
      settlement: 'credit_only',
    });
    await createPlan(db.pool, plan, 'system');
    const created = await createSubscription(db.pool, { customerId, planCode: 'prepaid', anchor: P1, actor: 'system' });
    assert.ok(created.created);
    // 300 calls (3.00) billed on an interim invoice, paid by credits: 5.25 − 3.00 = 2.25 left.
    await storeEvents(db.pool, { customerId, meterId: meter.id, from: P1, count: 300 });
    const activity = new MockActivityEnvironment({ ...defaultActivityInfo, workflowExecution: { workflowId: 'billing/acme', runId: 'r' } });
    const { invoiceId }: { invoiceId: string } = await activity.run(createDraftInterimInvoice({ pool: db.pool, clock: systemClock }), {
      subscriptionId: created.subscription.id,
      customerId,
      planCode: 'prepaid',
      periodStart: P1.toISOString(),
      until: new Date(P1.getTime() + 86_400_000).toISOString(),
      sequence: 1,
      threshold: '3.00',
    });
    const finalized: { total: string } = await activity.run(createFinalizeInvoice({ pool: db.pool, clock: systemClock }), { invoiceId });
    assert.equal(finalized.total, '0.00');
    assert.equal(await creditBalance(db.pool, customerId, 'USD'), '2.25');

    // Those 300 calls are still in P1's priced usage: the credit they spent counts once.
    assert.equal((await creditOnlyMoney(db.pool).available(subject({ periodStart: P1 })))?.toFixed(), '5.25');
    assert.equal((await creditOnlyMoney(db.pool).available(subject({ periodStart: P2 })))?.toFixed(), '2.25');

    // The period invoice deducts what the interim invoice billed (3.00), not its amount due after credits (0.00).
    const period: { invoiceId: string } = await activity.run(
      createDraftInvoice({ pool: db.pool, clock: systemClock, lookbackInvoices: 0 }),
      {
        subscriptionId: created.subscription.id,
        customerId,
        planCode: 'prepaid',
        periodStart: P1.toISOString(),
        periodEnd: P2.toISOString(),
      },
    );
    const { rows } = await db.pool.query<{ type: string; amount: string }>(
      'select type, amount::text from invoice_lines where invoice_id = $1 order by position',
      [period.invoiceId],
    );
    assert.deepEqual(rows, [
      { type: 'usage', amount: '3.00' },
      { type: 'interim_billed', amount: '-3.00' },
    ]);
  });
});
