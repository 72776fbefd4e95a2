import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { WorkflowContinuedAsNewError, type WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { freePort } from '../../scripts/free-port';
import { cancelSubscription, createSubscription, type Subscription } from '../../src/subscriptions/store';
import { temporalSubscriptionLifecycle } from '../../src/subscriptions/temporal-lifecycle';
import { createCustomer } from '../../src/customers/store';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import type { PaymentProvider } from '../../src/provider/payment-provider';
import { startProviderSimulator } from '../../src/provider/simulator';
import { billingState, workflowIdFor, type BillingPeriodActivities, type BillingPeriodView } from '../../src/workflows/billing-period';
import { workflowsPath } from '../../src/temporal/worker';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { seedHourlyPlan } from '../support/hourly-plan';
import { timeSkippingEnvironment } from '../support/temporal';
import { storeEvents } from '../support/usage-events';
import { collectionOf } from '../support/collection';
import { withIssueAndCharge } from '../../src/activities/issue-and-charge';
import { realActivities } from '../support/activities';

/*
 * A subscription canceled after the end of the period its workflow is closing: inside the allowed
 * lateness, while the close's draft activity is pending, and while no worker runs. Every stored
 * event up to the cancellation must land in exactly one invoice, the invoices must cover the
 * subscription up to the cancellation instant, and each is collected once. Real activities on
 * Postgres, the provider simulator over HTTP, the time-skipping server; the subscription is
 * started and canceled through the same lifecycle the API uses.
 */
const HOUR = 3_600_000;
/** The default ALLOWED_LATENESS_SECONDS. */
const LATENESS = 300_000;
/**
 * The lateness of the test that holds an activity across env.sleep: after that, this test server
 * was seen running its clock in real time instead of skipping, so the wait after the cancellation
 * is kept short.
 */
const QUICK_LATENESS = 10_000;

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let db: TestDatabase;
let simulator: Awaited<ReturnType<typeof startProviderSimulator>>;
let provider: PaymentProvider;
let meterId: string;

before(async () => {
  [bundle, db] = await Promise.all([bundleWorkflowCode({ workflowsPath }), createTestDatabase()]);
  simulator = await startProviderSimulator({ port: await freePort() });
  provider = createHttpPaymentProvider({ baseUrl: simulator.url, timeoutMs: 2000 });
  meterId = await seedHourlyPlan(db.pool);
});
// A fresh test server per test, as in period-close.test.ts: one that retried an activity may stop skipping time.
beforeEach(async () => {
  env = await timeSkippingEnvironment();
});
afterEach(async () => {
  await env?.teardown();
});
after(async () => {
  await simulator?.close();
  await db?.drop();
});

const activities = () => realActivities(db.pool, provider);
const lifecycle = (taskQueue: string, allowedLatenessMs = LATENESS) =>
  temporalSubscriptionLifecycle({ client: env.client, taskQueue, allowedLatenessMs, dunning: [], usageReportIntervalMs: 300_000 });

let customers = 0;
/** A customer subscribed to the hourly plan from the test server's now, with 20 events at the start of its first period. */
async function subscribed() {
  const name = `canceling-${++customers}`;
  const { customer } = await createCustomer(db.pool, { external_id: name, name, currency: 'USD' }, 'system');
  const anchor = new Date(await env.currentTimeMs());
  const created = await createSubscription(db.pool, { customerId: customer.id, planCode: 'hourly', anchor, actor: 'system' });
  assert.ok(created.created);
  await events(created.subscription, anchor, 20);
  return { subscription: created.subscription, anchor, periodEnd: new Date(anchor.getTime() + HOUR) };
}

const events = (s: Subscription, from: Date, count: number) => storeEvents(db.pool, { customerId: s.customer.id, meterId, from, count });

/** Canceled at `at` as the API does it: recorded in Postgres, then the workflow told. */
async function cancel(taskQueue: string, s: Subscription, at: Date): Promise<void> {
  const result = await cancelSubscription(db.pool, s.id, at, 'system');
  assert.equal(result?.canceled, true);
  await lifecycle(taskQueue).canceled(result!.subscription);
}

async function eventually<T>(what: string, probe: () => Promise<T>, ok: (value: T) => boolean, ms = 10_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined && ok(value)) return value;
    if (Date.now() - started > ms) assert.fail(`${what}: still ${JSON.stringify(value)} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const stateOf = (handle: WorkflowHandle) => handle.query(billingState);

/** Waits (skipping time) until the workflow's current run continues as new. */
async function continuedAsNew(handle: WorkflowHandle): Promise<void> {
  const { runId } = await handle.describe();
  await assert.rejects(
    env.client.workflow.getHandle(handle.workflowId, runId, { followRuns: false }).result(),
    WorkflowContinuedAsNewError,
  );
}

/** Waits (skipping time) for the workflow's last run to complete. */
async function completed(handle: WorkflowHandle): Promise<void> {
  await handle.result();
  assert.equal((await handle.describe()).status.name, 'COMPLETED');
}

/**
 * The customer's invoices are exactly `periods` (start, end), every stored event of the
 * customer before the last end is in exactly one of them and every later one in none, and each
 * invoice is collected with one successful charge — or, when its prorated total rounds to zero
 * (a final period of a few seconds without usage), needs none.
 */
async function billedExactly(s: Subscription, periods: Array<[Date, Date]>): Promise<void> {
  const { rows: invoices } = await db.pool.query<{ id: string; period_start: Date; period_end: Date; status: string; total: string }>(
    'select id, period_start, period_end, status, total::text from invoices where customer_id = $1 order by period_start',
    [s.customer.id],
  );
  assert.deepEqual(
    invoices.map((i) => [i.period_start.toISOString(), i.period_end.toISOString()]),
    periods.map(([start, end]) => [start.toISOString(), end.toISOString()]),
  );
  const coveredUntil = periods.at(-1)![1];
  const { rows: misplaced } = await db.pool.query<{ event_id: string; event_time: Date; invoices: number }>(
    `select e.event_id, e.event_time, count(i.id)::int as invoices
       from usage_events e left join invoices i on i.customer_id = $1 and e.event_time >= i.period_start and e.event_time < i.period_end
      where e.customer_short_id = (select short_id from customers where id = $1::uuid) group by e.event_id, e.event_time
     having count(i.id) <> case when e.event_time < $2 then 1 else 0 end`,
    [s.customer.id, coveredUntil],
  );
  assert.deepEqual(misplaced, [], 'every event up to the cancellation in exactly one invoice, none after it');
  for (const invoice of invoices) {
    const collection = await collectionOf(env.client, db.pool, invoice.id);
    const due = Number(invoice.total) !== 0;
    assert.deepEqual(collection, { outcome: due ? 'paid' : 'not_due', attempts: 1 });
    assert.deepEqual(
      (await provider.listCharges({ invoiceId: invoice.id })).map((c) => c.status),
      due ? ['succeeded'] : [],
    );
  }
}

describe('cancellation after the end of the period being closed', () => {
  test('inside the allowed lateness: the closed period in full, then [next start, cancellation) after its own lateness', async () => {
    const taskQueue = 'cancel-lateness';
    const { subscription, anchor, periodEnd } = await subscribed();
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: activities() });
    await worker.runUntil(async () => {
      await lifecycle(taskQueue).started(subscription);
      const handle = env.client.workflow.getHandle(workflowIdFor(subscription.customer.externalId));
      await env.sleep(HOUR + 3000);
      const at = new Date(await env.currentTimeMs());
      assert.ok(at.getTime() - periodEnd.getTime() < LATENESS, 'the cancellation falls inside the lateness of the period being closed');
      await events(subscription, periodEnd, 3);
      await events(subscription, at, 2);
      await cancel(taskQueue, subscription, at);
      const closing = await eventually(
        'the run learns of the cancellation',
        () => stateOf(handle),
        (s) => s.canceled,
      );
      assert.deepEqual([closing.period.start, closing.billedUntil], [anchor.toISOString(), periodEnd.toISOString()]);
      await completed(handle);
      await billedExactly(subscription, [
        [anchor, periodEnd],
        [periodEnd, at],
      ]);
    });
  });

  test('while the close is drafting: the draft stands, the rest is billed by the next run', async () => {
    const taskQueue = 'cancel-during-draft';
    const { subscription, anchor, periodEnd } = await subscribed();
    const real = activities();
    let drafting!: () => void;
    const draftStarted = new Promise<void>((resolve) => (drafting = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let held = false;
    // The first draft waits until the test releases it, as a slow database or a long retry would make it.
    const draftInvoice: BillingPeriodActivities['draftInvoice'] = async (input) => {
      if (!held) {
        held = true;
        drafting();
        await released;
      }
      return real.draftInvoice(input);
    };
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      // The close's one activity drafts through the held draft too.
      activities: withIssueAndCharge({ ...real, draftInvoice }),
    });
    await worker.runUntil(async () => {
      await lifecycle(taskQueue, QUICK_LATENESS).started(subscription);
      const handle = env.client.workflow.getHandle(workflowIdFor(subscription.customer.externalId));
      await env.sleep(HOUR + QUICK_LATENESS);
      await draftStarted;
      const at = new Date(await env.currentTimeMs());
      await events(subscription, new Date(periodEnd.getTime() + 60_000), 5);
      await events(subscription, at, 2);
      await cancel(taskQueue, subscription, at);
      const closing = await eventually(
        'the run learns of the cancellation',
        () => stateOf(handle),
        (s) => s.canceled,
      );
      assert.equal(closing.billedUntil, periodEnd.toISOString(), 'the invoice being drafted covers its period as drafted');
      release();
      await completed(handle);
      await billedExactly(subscription, [
        [anchor, periodEnd],
        [periodEnd, at],
      ]);
    });
  });

  test('while no worker runs: the signal waits, and the next worker bills up to the cancellation', async () => {
    const taskQueue = 'cancel-worker-down';
    const { subscription, anchor, periodEnd } = await subscribed();
    // No sticky cache: the test server does not move a dead worker's sticky tasks back to the queue.
    const first = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities: activities(),
      maxCachedWorkflows: 0,
    });
    const running = first.run();
    await lifecycle(taskQueue).started(subscription);
    const handle = env.client.workflow.getHandle(workflowIdFor(subscription.customer.externalId));
    await eventually(
      'the first period runs',
      () => stateOf(handle),
      (s) => s.period.start === anchor.toISOString(),
    );
    first.shutdown();
    await running;

    await env.sleep(HOUR + 10_000);
    const at = new Date(await env.currentTimeMs());
    await events(subscription, periodEnd, 5);
    await events(subscription, at, 2);
    // Accepted with no worker to run it. (The test server stops its clock while a workflow task
    // waits for a worker, so the outage cannot also span the close here.)
    await cancel(taskQueue, subscription, at);

    const second = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: activities() });
    await second.runUntil(async () => {
      await completed(handle);
      await billedExactly(subscription, [
        [anchor, periodEnd],
        [periodEnd, at],
      ]);
    });
  });

  test('exactly on the period end: the period in full and nothing after it (periods are half-open)', async () => {
    const taskQueue = 'cancel-boundary';
    const { subscription, anchor, periodEnd } = await subscribed();
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: activities() });
    await worker.runUntil(async () => {
      await lifecycle(taskQueue).started(subscription);
      const handle = env.client.workflow.getHandle(workflowIdFor(subscription.customer.externalId));
      await env.sleep(HOUR + 3000);
      await events(subscription, periodEnd, 3);
      await cancel(taskQueue, subscription, periodEnd);
      await completed(handle);
      await billedExactly(subscription, [[anchor, periodEnd]]);
    });
  });

  test('learnt after the period holding it was closed: that invoice stands, the current period is not billed', async () => {
    const taskQueue = 'cancel-in-the-past';
    const { subscription, anchor, periodEnd } = await subscribed();
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: activities() });
    await worker.runUntil(async () => {
      await lifecycle(taskQueue).started(subscription);
      const handle = env.client.workflow.getHandle(workflowIdFor(subscription.customer.externalId));
      await continuedAsNew(handle);
      await events(subscription, new Date(periodEnd.getTime() + 60_000), 3);
      // Recorded half-way through the first period, told to the workflow only now (say, a retried request).
      await cancel(taskQueue, subscription, new Date(anchor.getTime() + HOUR / 2));
      const state: BillingPeriodView = await eventually(
        'the run learns of the cancellation',
        () => stateOf(handle),
        (s) => s.canceled,
      );
      assert.deepEqual([state.period.start, state.billedUntil], [periodEnd.toISOString(), periodEnd.toISOString()]);
      await completed(handle);
      await billedExactly(subscription, [[anchor, periodEnd]]);
    });
  });

  test('subscribed again during the lateness: the old subscription is billed up to its cancellation, then the new one from its start', async () => {
    const taskQueue = 'cancel-handover';
    const { subscription, anchor, periodEnd } = await subscribed();
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: activities() });
    await worker.runUntil(async () => {
      await lifecycle(taskQueue).started(subscription);
      const handle = env.client.workflow.getHandle(workflowIdFor(subscription.customer.externalId));
      await env.sleep(HOUR + 3000);
      const at = new Date(await env.currentTimeMs());
      await events(subscription, periodEnd, 3);
      await cancel(taskQueue, subscription, at);
      await env.sleep(60_000);
      const renewedAt = new Date(await env.currentTimeMs());
      const renewed = await createSubscription(db.pool, {
        customerId: subscription.customer.id,
        planCode: 'hourly',
        anchor: renewedAt,
        actor: 'system',
      });
      assert.ok(renewed.created);
      await lifecycle(taskQueue).started(renewed.subscription);
      await events(subscription, renewedAt, 4);

      // The closed period's run, then the run of [period end, cancellation), then the new subscription.
      await continuedAsNew(handle);
      assert.deepEqual(await stateOf(handle).then((s) => [s.subscriptionId, s.period.start, s.billedUntil]), [
        subscription.id,
        periodEnd.toISOString(),
        at.toISOString(),
      ]);
      await continuedAsNew(handle);
      const next = await stateOf(handle);
      assert.deepEqual([next.subscriptionId, next.canceled, next.period.start], [renewed.subscription.id, false, renewedAt.toISOString()]);
      const { rows } = await db.pool.query<{ subscription_id: string; period_start: Date; period_end: Date }>(
        'select subscription_id, period_start, period_end from invoices where customer_id = $1 order by period_start',
        [subscription.customer.id],
      );
      assert.deepEqual(rows, [
        { subscription_id: subscription.id, period_start: anchor, period_end: periodEnd },
        { subscription_id: subscription.id, period_start: periodEnd, period_end: at },
      ]);
      await handle.terminate('the new subscription is billed as any other (see period-close.test.ts)');
      await billedExactly(subscription, [
        [anchor, periodEnd],
        [periodEnd, at],
      ]);
    });
  });
});

describe('histories recorded by the previous billing workflow', () => {
  // Recorded on the time-skipping server from the code before cancellations were billed past the
  // closed period (commit 2458358): a cancellation inside the lateness (that run completed), one
  // for the period before the current one (it drafted an empty period), and a hand-over.
  test('replay without nondeterminism', async () => {
    const { History } = proto.temporal.api.history.v1;
    for (const name of ['cancel-in-lateness', 'cancel-before-period', 'handover']) {
      const history = History.decode(readFileSync(new URL(`./fixtures/histories/${name}.binpb`, import.meta.url)));
      await Worker.runReplayHistory({ workflowBundle: bundle }, history, `billing/${name}`);
    }
  });
});
