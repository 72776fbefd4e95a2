import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WorkflowContinuedAsNewError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { freePort } from '../../scripts/free-port';
import { createActivities } from '../../src/activities';
import { systemClock } from '../../src/clock';
import { CreditGrantInputSchema } from '../../src/credits/input';
import { CreditService } from '../../src/credits/service';
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
    activities: createActivities({ pool: db.pool, clock: systemClock, webhookTimeoutMs: 1000, lookbackInvoices: 0, dunning: [], provider }),
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
