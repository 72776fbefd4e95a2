import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WorkflowContinuedAsNewError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { freePort } from '../../scripts/free-port';
import { systemClock } from '../../src/clock';
import { CreditGrantInputSchema } from '../../src/credits/input';
import { CreditService, purchaseRefFor } from '../../src/credits/service';
import { temporalCreditExpiryTimers } from '../../src/credits/temporal-expiry-timers';
import { createCustomer } from '../../src/customers/store';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import type { PaymentProvider } from '../../src/provider/payment-provider';
import { startProviderSimulator } from '../../src/provider/simulator';
import { createSubscription } from '../../src/subscriptions/store';
import { workflowsPath } from '../../src/temporal/worker';
import { billingPeriodWorkflow, workflowIdFor } from '../../src/workflows/billing-period';
import { creditExpiryWorkflowIdFor } from '../../src/workflows/credit-expiry';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { seedHourlyPlan } from '../support/hourly-plan';
import { timeSkippingEnvironment } from '../support/temporal';
import { storeEvents } from '../support/usage-events';
import { collectionOf } from '../support/collection';
import { realActivities } from '../support/activities';

/*
 * Prepaid credits with the real workflows and activities on the time-skipping server, Postgres
 * and the provider simulator: a period closed by the billing workflow is paid partly by credits,
 * the collection charges only the rest and tops the balance up automatically; a grant's expiry
 * is a durable timer that fires a month later, in test time.
 */
const taskQueue = 'credits';
let env: TestWorkflowEnvironment;
let db: TestDatabase;
let simulator: Awaited<ReturnType<typeof startProviderSimulator>>;
let provider: PaymentProvider;
let worker: Worker;
let running: Promise<void>;
let meterId: string;
let customerId: string;

const credits = () =>
  new CreditService({ pool: db.pool, clock: systemClock, provider, timers: temporalCreditExpiryTimers({ client: env.client, taskQueue }) });
const balance = async () => {
  const result = await credits().balance('cli', 'acme', 'USD');
  assert.ok(result.ok);
  return result.value.balance;
};

before(async () => {
  let bundle;
  [env, bundle, db] = await Promise.all([timeSkippingEnvironment(), bundleWorkflowCode({ workflowsPath }), createTestDatabase()]);
  simulator = await startProviderSimulator({ port: await freePort() });
  provider = createHttpPaymentProvider({ baseUrl: simulator.url, timeoutMs: 2000 });
  meterId = await seedHourlyPlan(db.pool);
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: bundle,
    activities: realActivities(db.pool, provider, 0),
  });
  running = worker.run();
  ({
    customer: { id: customerId },
  } = await createCustomer(db.pool, { external_id: 'acme', name: 'Acme', currency: 'USD' }, 'system'));
});
after(async () => {
  worker?.shutdown();
  await running;
  await env?.teardown();
  await simulator?.close();
  await db?.drop();
});

// In this order: after the billing test (which ends by terminating the billing workflow's next
// run), the time-skipping server was seen not to skip time for workflows started later.
describe('prepaid credits on the workflows', () => {
  test('a grant expires by its durable timer a month later: what is left of it leaves the balance, once', async () => {
    const now = await env.currentTimeMs();
    const expiring = CreditGrantInputSchema.parse({
      reference: 'trial',
      source: 'promotional',
      currency: 'USD',
      amount: '7.00',
      expires_at: new Date(now + 30 * 86_400_000).toISOString(),
    });
    const granted = await credits().grant('cli', 'acme', expiring);
    assert.ok(granted.ok);
    assert.equal(await balance(), '7.00');

    const timer = env.client.workflow.getHandle(creditExpiryWorkflowIdFor(granted.value.grant.id));
    // Awaiting the result lets the test server skip the month.
    assert.deepEqual(await timer.result(), { expired: '7.00' });
    assert.ok((await env.currentTimeMs()) >= now + 30 * 86_400_000);
    assert.equal(await balance(), '0.00');

    // The timer's activity run again (a retry after a lost answer) expires nothing more.
    assert.deepEqual(await credits().expire(granted.value.grant.id, 'system'), { expired: '0' });
    const { rows } = await db.pool.query<{ amount: string }>(`select amount::text from credit_ledger_entries where kind = 'expiry'`);
    assert.deepEqual(
      rows.map((r) => r.amount),
      ['-7.00'],
    );
    // Granting again under the same reference is the same grant: its timer is found, not started twice.
    assert.ok((await credits().grant('cli', 'acme', expiring)).ok);
  });
  test('an expiry that leaves the balance below the threshold buys the automatic top-up, once, through the provider', async () => {
    const { customer } = await createCustomer(db.pool, { external_id: 'globex', name: 'Globex', currency: 'USD' }, 'system');
    const globex = () => credits();
    const now = await env.currentTimeMs();
    const trial = await globex().grant(
      'cli',
      'globex',
      CreditGrantInputSchema.parse({
        reference: 'trial',
        source: 'promotional',
        currency: 'USD',
        amount: '3.00',
        expires_at: new Date(now + 86_400_000).toISOString(),
      }),
    );
    assert.ok(trial.ok);
    const kept = CreditGrantInputSchema.parse({ reference: 'kept', source: 'promotional', currency: 'USD', amount: '1.00' });
    assert.ok((await globex().grant('cli', 'globex', kept)).ok);
    assert.ok((await globex().setAutoTopUp('cli', 'globex', { currency: 'USD', threshold: '2.00', amount: '10.00', enabled: true })).ok);

    // 4.00 before, 1.00 after the expiry: below 2.00, so 10.00 is bought.
    const grantId = trial.value.grant.id;
    assert.deepEqual(await env.client.workflow.getHandle(creditExpiryWorkflowIdFor(grantId)).result(), { expired: '3.00' });
    const topUps = await db.pool.query<{ id: string; source: string; amount: string; status: string }>(
      `select id, source, amount::text, status from credit_grants where customer_id = $1 and reference = $2`,
      [customer.id, `auto-top-up:expiry:${grantId}`],
    );
    assert.deepEqual(
      topUps.rows.map((g) => [g.source, g.amount, g.status]),
      [['purchased', '10.00', 'active']],
    );
    const topUpId = topUps.rows[0]!.id;
    const charged = async () => (await provider.listCharges({ invoiceId: purchaseRefFor(topUpId) })).map((c) => [c.status, c.amountMinor]);
    assert.deepEqual(await charged(), [['succeeded', '1000']]);
    const balanceOf = async () => {
      const result = await globex().balance('cli', 'globex', 'USD');
      assert.ok(result.ok);
      return result.value.balance;
    };
    assert.equal(await balanceOf(), '11.00');

    // The top-up asked again for the same expiry (a retry) is the same grant: no second charge.
    const again = await globex().autoTopUpAfterExpiry(grantId, 'system');
    assert.ok(again.ok);
    assert.deepEqual(again.value, { outcome: 'topped_up', grantId: topUpId, balance: '11.00' });
    assert.deepEqual(await charged(), [['succeeded', '1000']]);
    const audited = await db.pool.query<{ n: number }>(
      `select count(*)::int as n from audit_log where action = 'credit.purchased' and subject_id = $1`,
      [topUpId],
    );
    assert.equal(audited.rows[0]!.n, 1);
  });
  test('a closed period paid partly by credits: the rest is charged, then the balance is topped up once', async () => {
    const promo = CreditGrantInputSchema.parse({ reference: 'promo', source: 'promotional', currency: 'USD', amount: '2.00' });
    assert.ok((await credits().grant('cli', 'acme', promo)).ok);
    const topUp = await credits().setAutoTopUp('cli', 'acme', { currency: 'USD', threshold: '1.00', amount: '10.00', enabled: true });
    assert.ok(topUp.ok);

    const start = new Date(await env.currentTimeMs());
    const created = await createSubscription(db.pool, { customerId, planCode: 'hourly', anchor: start, actor: 'system' });
    assert.ok(created.created);
    // 1.00 base fee + 100 × 0.015 + 100 × 0.0125 = 3.75, of which the promotion pays 2.00.
    await storeEvents(db.pool, { customerId, meterId, from: start, count: 200 });
    const billing = await env.client.workflow.start(billingPeriodWorkflow, {
      taskQueue,
      workflowId: workflowIdFor('acme'),
      args: [
        {
          terms: {
            subscriptionId: created.subscription.id,
            customer: 'acme',
            customerId,
            planCode: 'hourly',
            limits: [],
            anchor: start.toISOString(),
            interval: { kind: 'duration', iso: 'PT1H' },
          },
          allowedLatenessMs: 60_000,
          dunning: [],
          usageReportIntervalMs: 300_000,
        },
      ],
    });
    const firstRun = env.client.workflow.getHandle(billing.workflowId, billing.firstExecutionRunId, { followRuns: false });
    await assert.rejects(firstRun.result(), WorkflowContinuedAsNewError);
    await billing.terminate('this test bills the first period only');

    const { rows } = await db.pool.query<{ id: string; total: string }>('select id, total::text from invoices where customer_id = $1', [
      customerId,
    ]);
    assert.deepEqual(
      rows.map((r) => r.total),
      ['1.75'],
    );
    const invoiceId = rows[0]!.id;
    const lines = await db.pool.query<{ type: string; amount: string }>(
      `select type, amount::text from invoice_lines where invoice_id = $1 order by position`,
      [invoiceId],
    );
    assert.deepEqual(lines.rows.at(-1), { type: 'credit', amount: '-2.00' });
    const collection = await collectionOf(env.client, db.pool, invoiceId);
    assert.equal(collection.outcome, 'paid');
    assert.deepEqual(
      (await provider.listCharges({ invoiceId })).map((c) => c.amountMinor),
      ['175'],
    );
    // The drawdown left 0.00, below the 1.00 threshold: 10.00 bought once, under the invoice's reference.
    assert.equal(await balance(), '10.00');
    const topUps = await db.pool.query<{ status: string }>(`select status from credit_grants where reference = $1`, [
      `auto-top-up:${invoiceId}`,
    ]);
    assert.deepEqual(
      topUps.rows.map((r) => r.status),
      ['active'],
    );
  });
});
