import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowContinuedAsNewError, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { freePort } from '../../scripts/free-port';
import { createActivities, type ActivityDeps } from '../../src/activities';
import { createIssueAndCharge, withIssueAndCharge } from '../../src/activities/issue-and-charge';
import { createSubscription } from '../../src/subscriptions/store';
import { systemClock } from '../../src/clock';
import { createCustomer } from '../../src/customers/store';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import type { PaymentProvider } from '../../src/provider/payment-provider';
import { startProviderSimulator } from '../../src/provider/simulator';
import { billingPeriodWorkflow, workflowIdFor } from '../../src/workflows/billing-period';
import { collectionWorkflowIdFor, invoiceCollectionWorkflow } from '../../src/workflows/invoice-collection';
import { workflowsPath } from '../../src/temporal/worker';
import { collectionOf } from '../support/collection';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { timeSkippingEnvironment } from '../support/temporal';
import { seedHourlyPlan } from '../support/hourly-plan';
import { storeEvents } from '../support/usage-events';
import { waitFor } from '../support/wait-for';

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
  [bundle, db] = await Promise.all([bundleWorkflowCode({ workflowsPath }), createTestDatabase()]);
  simulator = await startProviderSimulator({ port: await freePort() });
  provider = createHttpPaymentProvider({ baseUrl: simulator.url, timeoutMs: 1000 });
  meterId = await seedHourlyPlan(db.pool);
});
// A fresh test server per test: after an activity fails and is retried, the time-skipping test
// server (1.40) can stop skipping time for the rest of its life, which would stall later timers.
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

const activityDeps = (): ActivityDeps => ({
  pool: db.pool,
  clock: systemClock,
  webhookTimeoutMs: 1000,
  lookbackInvoices: 3,
  dunning: [],
  provider,
});

/**
 * Each named activity runs for real, commits, and then fails once, as a process dying right after
 * its write would. The close's one activity runs over these steps, so it also crashes after each
 * of its own steps' writes, and once after all of them.
 */
function crashingAfterWrite(names: string[], crashed: Set<string>) {
  const crashing =
    (name: string, fn: (input: never) => Promise<unknown>) =>
    async (input: never): Promise<unknown> => {
      const result = await fn(input);
      if (names.includes(name) && !crashed.has(name)) {
        crashed.add(name);
        throw ApplicationFailure.retryable(`${name} crashed after its write`, 'injected_crash');
      }
      return result;
    };
  const real = createActivities(activityDeps()) as unknown as Record<string, (input: never) => Promise<unknown>>;
  const steps = Object.fromEntries(Object.entries(real).map(([name, fn]) => [name, crashing(name, fn)]));
  const issueAndCharge = createIssueAndCharge(steps as unknown as Parameters<typeof createIssueAndCharge>[0]);
  return { ...steps, issueAndCharge: crashing('issueAndCharge', issueAndCharge as (input: never) => Promise<unknown>) };
}

let customers = 0;
/** A customer subscribed from the test server's now, with `calls` events in its first period. */
async function subscribedCustomer(calls: number) {
  const name = `customer-${++customers}`;
  const { customer } = await createCustomer(db.pool, { external_id: name, name, currency: 'USD' }, 'system');
  const anchor = new Date(await env.currentTimeMs());
  const created = await createSubscription(db.pool, { customerId: customer.id, planCode: 'hourly', anchor, actor: 'system' });
  assert.ok(created.created);
  await storeEvents(db.pool, { customerId: customer.id, meterId, from: anchor, count: calls });
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

/** The first period's close: waits (skipping time) for the period run to end in continue-as-new. */
async function closed(billing: WorkflowHandleWithFirstExecutionRunId, customerId: string): Promise<string> {
  const firstRun = env.client.workflow.getHandle(billing.workflowId, billing.firstExecutionRunId, { followRuns: false });
  await assert.rejects(firstRun.result(), WorkflowContinuedAsNewError);
  const { rows } = await db.pool.query<{ id: string }>('select id from invoices where customer_id = $1 order by period_start limit 1', [
    customerId,
  ]);
  return rows[0]!.id;
}

/** Closes the first period, then waits (skipping time over any dunning) for its invoice's collection. */
async function collected(
  billing: WorkflowHandleWithFirstExecutionRunId,
  customerId: string,
): Promise<{ invoiceId: string; result: Awaited<ReturnType<typeof collectionOf>> }> {
  const invoiceId = await closed(billing, customerId);
  return { invoiceId, result: await collectionOf(env.client, db.pool, invoiceId) };
}

const count = async (sql: string, params: unknown[]) =>
  Number((await db.pool.query<{ n: string }>(`select count(*) as n from ${sql}`, params)).rows[0]!.n);
const fault = (body: unknown) =>
  fetch(`${simulator.url}/_sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** One customer's period closed and collected by a worker of its own with these activities (the real ones by default). */
async function closeAndCollect(
  taskQueue: string,
  customer: Awaited<ReturnType<typeof subscribedCustomer>>,
  dunning: string[],
  activities: object = createActivities(activityDeps()),
) {
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities });
  return worker.runUntil(async () => collected(await startBilling(taskQueue, customer.terms, dunning), customer.customerId));
}

/**
 * Closes a customer's period with `step` failing once with `failure()` inside the close's own
 * activity (the collection workflow's call goes through); says how often each step ran and which
 * activities the collection workflow scheduled.
 */
async function closeWithFailingStep(step: 'chargeInvoice' | 'autoTopUpCredits', failure: () => Error) {
  const customer = await subscribedCustomer(5);
  const real = createActivities(activityDeps());
  const calls = { chargeInvoice: 0, autoTopUpCredits: 0 };
  const chargeInvoice: typeof real.chargeInvoice = async (input) => {
    if (calls.chargeInvoice++ === 0 && step === 'chargeInvoice') throw failure();
    return real.chargeInvoice(input);
  };
  const autoTopUpCredits: typeof real.autoTopUpCredits = async (input) => {
    if (calls.autoTopUpCredits++ === 0 && step === 'autoTopUpCredits') throw failure();
    return real.autoTopUpCredits(input);
  };
  const steps = { ...real, chargeInvoice, autoTopUpCredits };
  const { invoiceId, result } = await closeAndCollect(`close-failing-${customer.name}`, customer, ['PT1H'], withIssueAndCharge(steps));
  return { invoiceId, result, calls, collectionSteps: await collectionSteps(invoiceId) };
}

/** The activities the invoice's collection workflow scheduled, in order. */
async function collectionSteps(invoiceId: string): Promise<string[]> {
  const { events } = await env.client.workflow.getHandle(collectionWorkflowIdFor(invoiceId)).fetchHistory();
  return events!.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
}

describe('period close', () => {
  test('every step, and the close around them after the charge, crashes once after its write: still one invoice, priced from the raw events, and one charge', async () => {
    const taskQueue = 'close-crash';
    const customer = await subscribedCustomer(120);
    const crashes = ['draftInvoice', 'finalizeInvoice', 'chargeInvoice', 'issueAndCharge'];
    const crashed = new Set<string>();
    const { invoiceId, result } = await closeAndCollect(taskQueue, customer, ['PT1H'], crashingAfterWrite(crashes, crashed));
    assert.deepEqual(result, { outcome: 'paid', attempts: 1 });
    assert.deepEqual([...crashed].sort(), [...crashes].sort(), 'every step crashed once');

    const { rows } = await db.pool.query('select status, total::text, usage from invoices where customer_id = $1', [customer.customerId]);
    // 1.00 base + 100 × 0.015 + 20 × 0.0125 = 1.00 + 1.50 + 0.25
    assert.deepEqual(rows, [{ status: 'paid', total: '2.75', usage: { api_calls: '120' } }]);
    assert.equal(await count(`charge_attempts where invoice_id = $1 and status = 'succeeded'`, [invoiceId]), 1);
    const charges = await provider.listCharges({ invoiceId });
    assert.deepEqual(
      charges.map((c) => [c.status, c.amountMinor]),
      [['succeeded', '275']],
    );
    assert.equal(await count(`audit_log where subject_id = $1 and action = 'invoice.finalized'`, [invoiceId]), 1);
    assert.equal(await count(`audit_log where subject_id = $1 and action = 'charge.succeeded'`, [invoiceId]), 1);
    // The finalize retried after its commit took no second number: every number issued is on an invoice.
    const { rows: numbering } = await db.pool.query<{ numbered: number; issued: number }>(
      `select (select count(*)::int from invoices where number is not null) as numbered,
              (select sum(last_number)::int from invoice_number_series) as issued`,
    );
    assert.ok(numbering[0]!.numbered >= 1);
    assert.equal(numbering[0]!.numbered, numbering[0]!.issued);
  });

  test('the response of a successful charge is lost and the worker is restarted: no second charge', async () => {
    const taskQueue = 'close-ambiguous';
    const customer = await subscribedCustomer(10);
    assert.equal((await fault({ match: { customerId: customer.customerId }, fault: 'ambiguous' })).status < 300, true);
    // No sticky cache: the test server does not move a dead worker's sticky tasks back to the queue.
    const first = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities: createActivities(activityDeps()),
      maxCachedWorkflows: 0,
    });
    const running = first.run();
    const billing = await startBilling(taskQueue, customer.terms, ['PT1H']);
    // Awaiting the close lets the test server skip to it; the second worker finishes it.
    const closing = closed(billing, customer.customerId);
    // The provider charged, but the worker never heard. The close does not wait for the answer:
    // it hands attempt 1 to the collection workflow. Stop the worker there, as a crash or a deploy would.
    const invoiceId = await waitFor(
      async () => {
        const { rows } = await db.pool.query<{ id: string }>('select id from invoices where customer_id = $1', [customer.customerId]);
        const id = rows[0]?.id;
        return id !== undefined && (await provider.listCharges({ invoiceId: id })).length > 0 ? id : undefined;
      },
      { description: 'the provider charged' },
    );
    await waitFor(async () => (await billing.fetchHistory()).events!.some((e) => e.activityTaskCompletedEventAttributes), {
      description: 'the close handed the charge over',
    });
    first.shutdown();
    await running;

    const second = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities: createActivities(activityDeps()),
    });
    const result = await second.runUntil(async () => {
      assert.equal(await closing, invoiceId);
      return collectionOf(env.client, db.pool, invoiceId);
    });
    assert.deepEqual(result, { outcome: 'paid', attempts: 1 });
    assert.deepEqual(
      (await provider.listCharges({ invoiceId })).map((c) => c.status),
      ['succeeded'],
    );
    assert.equal(await count(`charge_attempts where invoice_id = $1`, [invoiceId]), 1);
    assert.equal((await db.pool.query('select status from invoices where id = $1', [invoiceId])).rows[0].status, 'paid');
  });

  test('timeouts and 5xx are retried under the same key until the provider answers: one charge', async () => {
    const taskQueue = 'close-retries';
    const customer = await subscribedCustomer(5);
    await fault({ match: { customerId: customer.customerId }, fault: '5xx', times: 2 });
    await fault({ match: { customerId: customer.customerId }, fault: 'timeout' });
    const { invoiceId, result } = await closeAndCollect(taskQueue, customer, ['P1D']);
    assert.deepEqual(result, { outcome: 'paid', attempts: 1 });
    assert.deepEqual(
      (await provider.listCharges({ invoiceId })).map((c) => [c.status, c.idempotencyKey]),
      [['succeeded', `meterflow-invoice-${invoiceId}-attempt-1`]],
    );
  });

  test('a declined first charge goes to dunning: collection starts at attempt 2, with no second top-up, and is paid', async () => {
    const taskQueue = 'close-declined';
    const customer = await subscribedCustomer(5);
    await fault({ match: { customerId: customer.customerId }, fault: 'decline', times: 1, declineCode: 'card_declined' });
    const { invoiceId, result } = await closeAndCollect(taskQueue, customer, ['PT1H']);
    assert.deepEqual(result, { outcome: 'paid', attempts: 2 });
    assert.deepEqual(
      (await db.pool.query('select attempt, status, decline_code from charge_attempts where invoice_id = $1 order by attempt', [invoiceId]))
        .rows,
      [
        { attempt: 1, status: 'declined', decline_code: 'card_declined' },
        { attempt: 2, status: 'succeeded', decline_code: null },
      ],
    );
    assert.deepEqual(
      (await provider.listCharges({ invoiceId })).map((c) => c.status),
      ['declined', 'succeeded'],
    );
    // The close made attempt 1 and the top-up; the collection workflow only the rest.
    assert.deepEqual(await collectionSteps(invoiceId), ['chargeInvoice']);
  });

  const failures = {
    'for good (the provider rejects it)': () => ApplicationFailure.nonRetryable('the provider rejected the request', 'provider_rejected'),
    'for now (the provider is unreachable)': () => new Error('connect ECONNREFUSED'),
  };
  for (const [how, failure] of Object.entries(failures)) {
    test(`a first charge that fails ${how} does not hold the close: the collection workflow tries attempt 1 again`, async () => {
      const { invoiceId, result, calls, collectionSteps } = await closeWithFailingStep('chargeInvoice', failure);
      assert.deepEqual(result, { outcome: 'paid', attempts: 1 });
      assert.deepEqual(calls, { chargeInvoice: 2, autoTopUpCredits: 1 });
      assert.deepEqual(collectionSteps, ['chargeInvoice']);
      assert.deepEqual(
        (await provider.listCharges({ invoiceId })).map((c) => [c.status, c.idempotencyKey]),
        [['succeeded', `meterflow-invoice-${invoiceId}-attempt-1`]],
      );
    });
  }

  test('an automatic top-up that fails for now does not hold the close: the collection workflow runs the top-up, then attempt 1', async () => {
    const { invoiceId, result, calls, collectionSteps } = await closeWithFailingStep(
      'autoTopUpCredits',
      failures['for now (the provider is unreachable)'],
    );
    assert.deepEqual(result, { outcome: 'paid', attempts: 1 });
    assert.deepEqual(calls, { chargeInvoice: 1, autoTopUpCredits: 2 });
    assert.deepEqual(collectionSteps, ['autoTopUpCredits', 'chargeInvoice']);
    assert.equal((await provider.listCharges({ invoiceId })).length, 1);
  });

  test('a declined first charge without dunning: payment_failed after that one attempt, notified once', async () => {
    const taskQueue = 'close-declined-no-dunning';
    const customer = await subscribedCustomer(5);
    await fault({ match: { customerId: customer.customerId }, fault: 'decline', times: 1, declineCode: 'card_declined' });
    const { invoiceId, result } = await closeAndCollect(taskQueue, customer, []);
    assert.deepEqual(result, { outcome: 'payment_failed', attempts: 1 });
    assert.equal((await db.pool.query('select status from invoices where id = $1', [invoiceId])).rows[0].status, 'payment_failed');
    const { rows: raised } = await db.pool.query(
      `select status, payload->'data'->>'attempts' as attempts from notifications where invoice_id = $1 and kind = 'payment_failed'`,
      [invoiceId],
    );
    assert.deepEqual(raised, [{ status: 'no_endpoint', attempts: '1' }]);
  });

  /** A finalized invoice written by the real draft and finalize activities, for a customer whose charges are declined `declines` times. */
  async function finalizedInvoice(declines: number): Promise<string> {
    const customer = await subscribedCustomer(5);
    await fault({ match: { customerId: customer.customerId }, fault: 'decline', times: declines, declineCode: 'card_declined' });
    const activity = new MockActivityEnvironment();
    const activities = createActivities(activityDeps());
    const start = new Date(customer.terms.anchor);
    const { invoiceId }: { invoiceId: string } = await activity.run(activities.draftInvoice, {
      subscriptionId: customer.terms.subscriptionId,
      customerId: customer.customerId,
      planCode: 'hourly',
      periodStart: start.toISOString(),
      periodEnd: new Date(start.getTime() + 3_600_000).toISOString(),
    });
    await activity.run(activities.finalizeInvoice, { invoiceId });
    return invoiceId;
  }
  const collect = (taskQueue: string, invoiceId: string) =>
    env.client.workflow.start(invoiceCollectionWorkflow, {
      taskQueue,
      workflowId: collectionWorkflowIdFor(invoiceId),
      args: [{ invoiceId, dunning: ['P1D', 'P3D'] }],
    });

  test('a declined charge is tried again after the first dunning wait (a durable timer) and paid', async () => {
    const taskQueue = 'close-dunning-recovers';
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities: createActivities(activityDeps()),
    });
    await worker.runUntil(async () => {
      const invoiceId = await finalizedInvoice(1);
      const handle = await collect(taskQueue, invoiceId);
      await waitFor(() => count(`charge_attempts where invoice_id = $1 and status = 'declined'`, [invoiceId]), {
        description: 'the first attempt declined',
      });
      await env.sleep('23 hours');
      assert.equal(await count(`charge_attempts where invoice_id = $1`, [invoiceId]), 1, 'no second attempt before the wait is over');
      assert.deepEqual(await handle.result(), { outcome: 'paid', attempts: 2 });
      assert.deepEqual(
        (await provider.listCharges({ invoiceId })).map((c) => c.status),
        ['declined', 'succeeded'],
      );
      assert.deepEqual(
        (
          await db.pool.query('select attempt, status, decline_code from charge_attempts where invoice_id = $1 order by attempt', [
            invoiceId,
          ])
        ).rows,
        [
          { attempt: 1, status: 'declined', decline_code: 'card_declined' },
          { attempt: 2, status: 'succeeded', decline_code: null },
        ],
      );
      assert.equal((await db.pool.query('select status from invoices where id = $1', [invoiceId])).rows[0].status, 'paid');
    });
  });

  test('after the last dunning attempt the invoice is payment_failed and a notification is raised once', async () => {
    const taskQueue = 'close-dunning-fails';
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities: createActivities(activityDeps()),
    });
    await worker.runUntil(async () => {
      const invoiceId = await finalizedInvoice(3);
      const startedAt = await env.currentTimeMs();
      assert.deepEqual(await (await collect(taskQueue, invoiceId)).result(), { outcome: 'payment_failed', attempts: 3 });
      assert.ok((await env.currentTimeMs()) - startedAt >= 4 * 24 * 3_600_000, 'one and three days of dunning on the workflow clock');
      assert.equal((await db.pool.query('select status from invoices where id = $1', [invoiceId])).rows[0].status, 'payment_failed');
      assert.deepEqual(
        (
          await db.pool.query('select attempt, status, decline_code from charge_attempts where invoice_id = $1 order by attempt', [
            invoiceId,
          ])
        ).rows,
        [1, 2, 3].map((attempt) => ({ attempt, status: 'declined', decline_code: 'card_declined' })),
      );
      assert.equal((await provider.listCharges({ invoiceId })).filter((c) => c.status === 'succeeded').length, 0);
      // Raised with the status change, delivered (here: nowhere to send it) once.
      const { rows: raised } = await db.pool.query(
        `select status, payload->'data'->>'attempts' as attempts from notifications where invoice_id = $1 and kind = 'payment_failed'`,
        [invoiceId],
      );
      assert.deepEqual(raised, [{ status: 'no_endpoint', attempts: '3' }]);
    });
  });
});

/** What a close cost Temporal from the close timer on, its collection workflow's history included: events, tasks, child workflow starts. */
interface CloseCost {
  events: number;
  workflowTasks: number;
  activityTasks: number;
  localActivities: number;
  workflowStarts: number;
}

type HistoryEvents = NonNullable<Awaited<ReturnType<WorkflowHandleWithFirstExecutionRunId['fetchHistory']>>['events']>;

function costOf(events: HistoryEvents): CloseCost {
  const counted = (has: (e: HistoryEvents[number]) => unknown) => events.filter((e) => has(e)).length;
  return {
    events: events.length,
    workflowTasks: counted((e) => e.workflowTaskScheduledEventAttributes),
    activityTasks: counted((e) => e.activityTaskScheduledEventAttributes),
    localActivities: counted((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity'),
    workflowStarts: counted((e) => e.startChildWorkflowExecutionInitiatedEventAttributes),
  };
}

const plus = (a: CloseCost, b: CloseCost): CloseCost => ({
  events: a.events + b.events,
  workflowTasks: a.workflowTasks + b.workflowTasks,
  activityTasks: a.activityTasks + b.activityTasks,
  localActivities: a.localActivities + b.localActivities,
  workflowStarts: a.workflowStarts + b.workflowStarts,
});

describe('the cost of a close', () => {
  test('one customer whose first charge succeeds: at most 2 workflow tasks, 1 activity task and no workflow start', async (t) => {
    const taskQueue = 'close-cost';
    let names: string[] = [];
    const customer = await subscribedCustomer(30);
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities: createActivities(activityDeps()),
    });
    const { invoiceId, result, cost } = await worker.runUntil(async () => {
      const billing = await startBilling(taskQueue, customer.terms, ['PT1H']);
      const collection = await collected(billing, customer.customerId);
      const history = (await env.client.workflow.getHandle(billing.workflowId, billing.firstExecutionRunId).fetchHistory()).events!;
      // The close starts where its timer fires (a run without usage reports has no other timer).
      const closeTimer = history.map((e) => Boolean(e.timerFiredEventAttributes)).lastIndexOf(true);
      assert.ok(closeTimer > 0, 'the close timer fired');
      let total = costOf(history.slice(closeTimer));
      names = history.slice(closeTimer).map((e) => Object.keys(e).find((k) => k.endsWith('EventAttributes')) ?? '?');
      const child = env.client.workflow.getHandle(collectionWorkflowIdFor(collection.invoiceId));
      const started = await child.describe().then(
        () => true,
        () => false,
      );
      if (started) total = plus(total, costOf((await child.fetchHistory()).events!));
      return { ...collection, cost: total };
    });
    t.diagnostic(`close cost: ${JSON.stringify(cost)}`);
    t.diagnostic(`events: ${names.join(' ')}`);
    assert.deepEqual(result, { outcome: 'paid', attempts: 1 });
    assert.deepEqual(
      (await provider.listCharges({ invoiceId })).map((c) => c.status),
      ['succeeded'],
    );
    assert.ok(cost.workflowTasks <= 2, `${cost.workflowTasks} workflow tasks`);
    assert.ok(cost.activityTasks <= 1, `${cost.activityTasks} activity tasks`);
    assert.equal(cost.workflowStarts, 0);
    assert.ok(cost.events <= 17, `${cost.events} history events`);
  });
});
