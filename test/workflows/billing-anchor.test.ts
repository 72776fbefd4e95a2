import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { freePort } from '../../scripts/free-port';
import { createCustomer } from '../../src/customers/store';
import { startProviderSimulator } from '../../src/provider/simulator';
import { createSubscription, type Subscription } from '../../src/subscriptions/store';
import { temporalSubscriptionLifecycle } from '../../src/subscriptions/temporal-lifecycle';
import { workflowsPath } from '../../src/temporal/worker';
import { billingState, workflowIdFor } from '../../src/workflows/billing-period';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { seedHourlyPlan } from '../support/hourly-plan';
import { timeSkippingEnvironment } from '../support/temporal';
import { storeEvents } from '../support/usage-events';
import { realActivities } from '../support/activities';

/*
 * A subscription that starts mid-period on a billing anchor, through the lifecycle the API uses,
 * real activities on Postgres and the time-skipping server: its first invoice covers [start, the
 * anchor's next boundary) with the base fee prorated (1.00 × 45/60 = 0.75) and only usage from the
 * start; the next period is a whole hour on the anchor's schedule.
 */
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const LATENESS = 300_000;

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let db: TestDatabase;
let simulator: Awaited<ReturnType<typeof startProviderSimulator>>;
let meterId: string;

before(async () => {
  [bundle, db, env] = await Promise.all([bundleWorkflowCode({ workflowsPath }), createTestDatabase(), timeSkippingEnvironment()]);
  simulator = await startProviderSimulator({ port: await freePort() });
  meterId = await seedHourlyPlan(db.pool);
});
after(async () => {
  await env?.teardown();
  await simulator?.close();
  await db?.drop();
});

/** A worker with the real activities, the payment provider being the simulator. */
const workerOn = (taskQueue: string) =>
  Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: bundle,
    activities: realActivities(db.pool, simulator.url),
  });

/** The lifecycle the API starts subscriptions through. */
const lifecycleOn = (taskQueue: string) =>
  temporalSubscriptionLifecycle({
    client: env.client,
    taskQueue,
    allowedLatenessMs: LATENESS,
    dunning: [],
    usageReportIntervalMs: 300_000,
  });

async function eventually<T>(what: string, probe: () => Promise<T>, ok: (value: T) => boolean, ms = 15_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined && ok(value)) return value;
    if (Date.now() - started > ms) assert.fail(`${what}: still ${JSON.stringify(value)} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('started 15 minutes after a boundary of its billing anchor: [start, boundary) prorated, then whole periods', async () => {
  const taskQueue = 'billing-anchor';
  const { customer } = await createCustomer(db.pool, { external_id: 'anchored', name: 'Anchored', currency: 'USD' }, 'system');
  const start = new Date(await env.currentTimeMs());
  const billingAnchor = new Date(start.getTime() - 15 * MINUTE);
  const boundary = new Date(billingAnchor.getTime() + HOUR);
  const created = await createSubscription(db.pool, {
    customerId: customer.id,
    planCode: 'hourly',
    anchor: start,
    billingAnchor,
    actor: 'system',
  });
  assert.ok(created.created);
  const subscription = created.subscription;
  // Before the start (the customer's, not this subscription's), in the first period, in the second.
  await storeEvents(db.pool, { customerId: customer.id, meterId, from: new Date(start.getTime() - 5 * MINUTE), count: 3 });
  await storeEvents(db.pool, { customerId: customer.id, meterId, from: new Date(start.getTime() + MINUTE), count: 10 });
  await storeEvents(db.pool, { customerId: customer.id, meterId, from: new Date(boundary.getTime() + MINUTE), count: 4 });

  const worker = await workerOn(taskQueue);
  await worker.runUntil(async () => {
    const lifecycle = lifecycleOn(taskQueue);
    await lifecycle.started(subscription);
    const handle = env.client.workflow.getHandle(workflowIdFor('anchored'));
    const first = await eventually(
      'the first run answers',
      () => handle.query(billingState),
      () => true,
    );
    assert.deepEqual(first.period, { start: start.toISOString(), end: boundary.toISOString() });

    await env.sleep(boundary.getTime() - start.getTime() + LATENESS + 5000);
    const second = await eventually(
      'the next period runs',
      () => handle.query(billingState),
      (s) => s.period.start === boundary.toISOString(),
    );
    assert.equal(second.period.end, new Date(boundary.getTime() + HOUR).toISOString());
    await env.sleep(HOUR + LATENESS + 5000);
    await eventually(
      'the second period is invoiced',
      () => handle.query(billingState),
      (s) => s.period.start === new Date(boundary.getTime() + HOUR).toISOString(),
    );
    await handle.terminate('done');
  });

  const { rows: invoices } = await db.pool.query<{ id: string; period_start: Date; period_end: Date; total: string }>(
    'select id, period_start, period_end, total::text from invoices where customer_id = $1 order by period_start',
    [customer.id],
  );
  assert.deepEqual(
    invoices.map((i) => [i.period_start.toISOString(), i.period_end.toISOString(), i.total]),
    [
      // 1.00 × 45/60 + 10 × 0.015: the 3 calls before the start are not billed.
      [start.toISOString(), boundary.toISOString(), '0.90'],
      // A whole hour on the anchor: 1.00 + 4 × 0.015.
      [boundary.toISOString(), new Date(boundary.getTime() + HOUR).toISOString(), '1.06'],
    ],
  );
  const lines = async (invoiceId: string) =>
    (
      await db.pool.query<{ type: string; quantity: string | null; amount: string }>(
        'select type, quantity::text, amount::text from invoice_lines where invoice_id = $1 order by position',
        [invoiceId],
      )
    ).rows.map((l) => [l.type, l.quantity, l.amount]);
  assert.deepEqual(await lines(invoices[0]!.id), [
    ['base_fee', null, '0.75'],
    ['usage', '10', '0.15'],
  ]);
  assert.deepEqual(await lines(invoices[1]!.id), [
    ['base_fee', null, '1.00'],
    ['usage', '4', '0.06'],
  ]);
});

test("started in the future: the first invoice is the start's period, never one before it", async () => {
  const taskQueue = 'billing-anchor-future';
  const now = await env.currentTimeMs();
  // One on its own schedule, 90 minutes ahead (a whole first hour, 1.00); one 110 minutes ahead on
  // an anchor whose boundaries fall 40, 100 and 160 minutes ahead (its first period [start, +160):
  // 1.00 × 50/60).
  const later = [
    {
      customer: 'later',
      start: new Date(now + 90 * MINUTE),
      billingAnchor: undefined,
      firstEnd: new Date(now + 150 * MINUTE),
      total: '1.00',
    },
    {
      customer: 'later-anchored',
      start: new Date(now + 110 * MINUTE),
      billingAnchor: new Date(now - 20 * MINUTE),
      firstEnd: new Date(now + 160 * MINUTE),
      total: '0.83',
    },
  ];
  const subscriptions: { customerId: string; subscription: Subscription }[] = [];
  for (const { customer: externalId, start, billingAnchor } of later) {
    const { customer } = await createCustomer(db.pool, { external_id: externalId, name: externalId, currency: 'USD' }, 'system');
    const created = await createSubscription(db.pool, {
      customerId: customer.id,
      planCode: 'hourly',
      anchor: start,
      ...(billingAnchor ? { billingAnchor } : {}),
      actor: 'system',
    });
    assert.ok(created.created);
    subscriptions.push({ customerId: customer.id, subscription: created.subscription });
  }

  const worker = await workerOn(taskQueue);
  await worker.runUntil(async () => {
    const lifecycle = lifecycleOn(taskQueue);
    for (const [i, { customer, start, firstEnd }] of later.entries()) {
      await lifecycle.started(subscriptions[i]!.subscription);
      const handle = env.client.workflow.getHandle(workflowIdFor(customer));
      const first = await eventually(
        `${customer}'s first run answers`,
        () => handle.query(billingState),
        () => true,
      );
      assert.deepEqual(first.period, { start: start.toISOString(), end: firstEnd.toISOString() }, customer);
    }
    await env.sleep(160 * MINUTE + LATENESS + 5000);
    for (const { customer, firstEnd } of later) {
      const handle = env.client.workflow.getHandle(workflowIdFor(customer));
      await eventually(
        `${customer}'s second period runs`,
        () => handle.query(billingState),
        (s) => s.period.start === firstEnd.toISOString(),
      );
      await handle.terminate('done');
    }
  });

  for (const [i, { customer, start, firstEnd, total }] of later.entries()) {
    const { rows } = await db.pool.query<{ period_start: Date; period_end: Date; total: string }>(
      'select period_start, period_end, total::text from invoices where customer_id = $1 order by period_start',
      [subscriptions[i]!.customerId],
    );
    // Nothing billed before the start: the first invoice is [start, its end), prorated when an anchor cuts it.
    assert.deepEqual(
      rows.map((r) => [r.period_start.toISOString(), r.period_end.toISOString(), r.total]),
      [[start.toISOString(), firstEnd.toISOString(), total]],
      customer,
    );
  }
});
