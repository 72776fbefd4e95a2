import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { freePort } from '../../scripts/free-port';
import { createActivities, type ActivityDeps } from '../../src/activities';
import { createPlan } from '../../src/billing/plan-store';
import { createSubscription } from '../../src/billing/subscription-store';
import { systemClock } from '../../src/clock';
import { planSchema } from '../../src/domain/plan';
import { createCustomer } from '../../src/metering/customer-store';
import { createMeter } from '../../src/metering/meter-store';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import type { PaymentProvider } from '../../src/provider/payment-provider';
import { startProviderSimulator } from '../../src/provider/simulator';
import { billingPeriodWorkflow, workflowIdFor } from '../../src/workflows/billing-period';
import { collectionWorkflowIdFor, type InvoiceCollectionResult } from '../../src/workflows/invoice-collection';
import { workflowsPath } from '../../src/worker';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { timeSkippingEnvironment } from '../support/temporal';

/*
 * The period close with real activities on Postgres and the provider simulator behind a real
 * HTTP boundary, on the time-skipping server: whatever crashes, times out or loses a response,
 * a period yields one invoice and at most one successful charge.
 */
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let db: TestDatabase;
let simulator: Awaited<ReturnType<typeof startProviderSimulator>>;
let provider: PaymentProvider;
let meterId: string;

before(async () => {
  [env, bundle, db] = await Promise.all([timeSkippingEnvironment(), bundleWorkflowCode({ workflowsPath }), createTestDatabase()]);
  simulator = await startProviderSimulator({ port: await freePort() });
  provider = createHttpPaymentProvider({ baseUrl: simulator.url, timeoutMs: 1000 });
  const meter = await createMeter(db.pool, { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} });
  meterId = meter.meter.id;
  const plan = planSchema({ knownMeters: new Set(['api_calls']) }).parse({
    id: 'hourly',
    name: 'Hourly',
    currency: 'USD',
    base_fee: '1.00',
    charges: [{ meter: 'api_calls', model: 'graduated', tiers: [{ up_to: '100', unit_price: '0.015' }, { up_to: null, unit_price: '0.0125' }] }],
    interval: { kind: 'duration', iso: 'PT1H' },
  });
  await createPlan(db.pool, plan, 'system');
});
after(async () => {
  await env?.teardown();
  await simulator?.close();
  await db?.drop();
});

const activityDeps = (): ActivityDeps => ({ pool: db.pool, clock: systemClock, webhookTimeoutMs: 1000, lookbackInvoices: 3, provider });

/** Each named activity runs for real, commits, and then fails once, as a process dying right after its write would. */
function crashingAfterWrite(names: string[]) {
  const real = createActivities(activityDeps()) as unknown as Record<string, (input: unknown) => Promise<unknown>>;
  const crashed = new Set<string>();
  return Object.fromEntries(
    Object.entries(real).map(([name, fn]) => [
      name,
      async (input: unknown) => {
        const result = await fn(input);
        if (names.includes(name) && !crashed.has(name)) {
          crashed.add(name);
          throw ApplicationFailure.retryable(`${name} crashed after its write`, 'injected_crash');
        }
        return result;
      },
    ]),
  );
}

let customers = 0;
/** A customer subscribed to the hourly plan from the test server's now, with `calls` events in its first period. */
async function subscribedCustomer(calls: number) {
  const name = `customer-${++customers}`;
  const { customer } = await createCustomer(db.pool, { external_id: name, name, currency: 'USD' });
  const anchor = new Date(await env.currentTimeMs());
  const created = await createSubscription(db.pool, { customerId: customer.id, planCode: 'hourly', anchor, actor: 'system' });
  assert.ok(created.created);
  await db.pool.query(
    `insert into usage_events (customer_id, event_id, meter_id, event_time, received_at, value, properties, timestamp_provided, late)
     select $1, 'e-' || i, $2, $3::timestamptz + i * interval '1 second', now(), null, '{}', true, false from generate_series(1, $4) i`,
    [customer.id, meterId, anchor, calls],
  );
  const terms = {
    subscriptionId: created.subscription.id,
    customer: name,
    customerId: customer.id,
    planCode: 'hourly',
    limits: [],
    anchor: anchor.toISOString(),
    interval: { kind: 'duration' as const, iso: 'PT1H' },
  };
  return { name, customerId: customer.id, terms };
}

async function startBilling(taskQueue: string, terms: Awaited<ReturnType<typeof subscribedCustomer>>['terms'], dunning: string[]) {
  return env.client.workflow.start(billingPeriodWorkflow, {
    taskQueue,
    workflowId: workflowIdFor(terms.customer),
    args: [{ terms, allowedLatenessMs: 60_000, dunning }],
  });
}

/** Waits (skipping time) until the first period's invoice exists, then for its collection's result. */
async function collected(customerId: string): Promise<{ invoiceId: string; result: InvoiceCollectionResult }> {
  await env.sleep('1 hour');
  await env.sleep('2 minutes');
  for (let i = 0; i < 200; i++) {
    const { rows } = await db.pool.query<{ id: string; status: string }>('select id, status from invoices where customer_id = $1', [customerId]);
    if (rows[0] && rows[0].status !== 'draft') {
      const result = await env.client.workflow.getHandle(collectionWorkflowIdFor(rows[0].id)).result();
      return { invoiceId: rows[0].id, result };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail('no finalized invoice');
}

const count = async (sql: string, params: unknown[]) => Number((await db.pool.query<{ n: string }>(`select count(*) as n from ${sql}`, params)).rows[0]!.n);
const fault = (body: unknown) => fetch(`${simulator.url}/_sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('period close', () => {
  test('every step crashes once after its write: still one invoice, priced from the raw events, and one charge', async () => {
    const taskQueue = 'close-crash';
    const customer = await subscribedCustomer(120);
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities: crashingAfterWrite(['draftInvoice', 'finalizeInvoice', 'chargeInvoice']),
    });
    const { invoiceId, result } = await worker.runUntil(async () => {
      await startBilling(taskQueue, customer.terms, ['PT1H']);
      return collected(customer.customerId);
    });
    assert.deepEqual(result, { outcome: 'paid', attempts: 1 });

    const { rows } = await db.pool.query('select status, total::text, usage from invoices where customer_id = $1', [customer.customerId]);
    // 1.00 base + 100 × 0.015 + 20 × 0.0125 = 1.00 + 1.50 + 0.25
    assert.deepEqual(rows, [{ status: 'paid', total: '2.75', usage: { api_calls: '120' } }]);
    assert.equal(await count(`charge_attempts where invoice_id = $1 and status = 'succeeded'`, [invoiceId]), 1);
    const charges = await provider.listCharges({ invoiceId });
    assert.deepEqual(charges.map((c) => [c.status, c.amountMinor]), [['succeeded', '275']]);
    assert.equal(await count(`audit_log where subject_id = $1 and action = 'invoice.finalized'`, [invoiceId]), 1);
    assert.equal(await count(`audit_log where subject_id = $1 and action = 'charge.succeeded'`, [invoiceId]), 1);
  });

  test('the response of a successful charge is lost and the worker is restarted: no second charge', async () => {
    const taskQueue = 'close-ambiguous';
    const customer = await subscribedCustomer(10);
    assert.equal((await fault({ match: { customerId: customer.customerId }, fault: 'ambiguous' })).status < 300, true);
    const first = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: createActivities(activityDeps()) });
    const running = first.run();
    await startBilling(taskQueue, customer.terms, ['PT1H']);
    await env.sleep('1 hour');
    await env.sleep('2 minutes');
    // The provider charged, but the worker never heard: stop it there, as a crash or a deploy would.
    for (let i = 0; i < 200 && (await provider.listCharges({ customerId: customer.customerId })).length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    first.shutdown();
    await running;

    const second = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: createActivities(activityDeps()) });
    const { invoiceId, result } = await second.runUntil(() => collected(customer.customerId));
    assert.deepEqual(result, { outcome: 'paid', attempts: 1 });
    assert.deepEqual((await provider.listCharges({ invoiceId })).map((c) => c.status), ['succeeded']);
    assert.equal(await count(`charge_attempts where invoice_id = $1`, [invoiceId]), 1);
    assert.equal((await db.pool.query('select status from invoices where id = $1', [invoiceId])).rows[0].status, 'paid');
  });

  test('timeouts and 5xx are retried under the same key; declines follow the dunning schedule, then payment_failed', async () => {
    const taskQueue = 'close-dunning';
    const flaky = await subscribedCustomer(5);
    const declined = await subscribedCustomer(5);
    await fault({ match: { customerId: flaky.customerId }, fault: '5xx', times: 2 });
    await fault({ match: { customerId: flaky.customerId }, fault: 'timeout' });
    await fault({ match: { customerId: flaky.customerId }, fault: 'decline', declineCode: 'insufficient_funds' });
    await fault({ match: { customerId: declined.customerId }, fault: 'decline', times: 3, declineCode: 'card_declined' });
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: createActivities(activityDeps()) });
    await worker.runUntil(async () => {
      await startBilling(taskQueue, flaky.terms, ['P1D', 'P3D']);
      await startBilling(taskQueue, declined.terms, ['P1D', 'P3D']);
      const paid = await collected(flaky.customerId);
      assert.deepEqual(paid.result, { outcome: 'paid', attempts: 2 });
      assert.deepEqual((await provider.listCharges({ invoiceId: paid.invoiceId })).map((c) => c.status).sort(), ['declined', 'succeeded']);

      const failed = await collected(declined.customerId);
      assert.deepEqual(failed.result, { outcome: 'payment_failed', attempts: 3 });
      const { rows } = await db.pool.query('select status from invoices where id = $1', [failed.invoiceId]);
      assert.equal(rows[0].status, 'payment_failed');
      assert.deepEqual(
        (await db.pool.query('select attempt, status, decline_code from charge_attempts where invoice_id = $1 order by attempt', [failed.invoiceId])).rows,
        [1, 2, 3].map((attempt) => ({ attempt, status: 'declined', decline_code: 'card_declined' })),
      );
      assert.equal((await provider.listCharges({ invoiceId: failed.invoiceId })).filter((c) => c.status === 'succeeded').length, 0);
      // Raised with the status change, delivered (here: nowhere to send it) once.
      const { rows: raised } = await db.pool.query(`select status, payload->'data'->>'attempts' as attempts from notifications where invoice_id = $1 and kind = 'payment_failed'`, [failed.invoiceId]);
      assert.deepEqual(raised, [{ status: 'no_endpoint', attempts: '3' }]);
    });
  });
});
