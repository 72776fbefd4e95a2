import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { defaultPayloadConverter } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Decimal } from '../../src/domain/money';
import { EntitlementStore } from '../../src/entitlements/store';
import { UsageSignaler } from '../../src/metering/usage-signaler';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import { workflowsPath } from '../../src/temporal/worker';
import {
  billingPeriodWorkflow,
  billingState,
  usageReported,
  workflowIdFor,
  type SubscriptionTerms,
  type UsageReport,
} from '../../src/workflows/billing-period';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';
import { localEnvironment } from '../support/temporal';
import { waitFor } from '../support/wait-for';
import { realActivities } from '../support/activities';

/*
 * The usage signaler against a real Temporal dev server and the real billing workflow: usage far
 * from any decision point waits for the slow report, usage near one reaches the workflow at the
 * next tick, and stopping delivers everything owed. Quota publishes are simulated by applying
 * them to an EntitlementStore, as the entitlement listener does when the workflow publishes.
 */

const TASK_QUEUE = 'usage-signaler-test';
const INTERVAL_MS = 60_000;
const logger = pino({ level: 'warn' });

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let worker: Worker;
let running: Promise<void>;

before(async () => {
  [env, db] = await Promise.all([localEnvironment(), createTestDatabase()]);
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowsPath,
    // Monthly periods: nothing closes during the test, so the provider is never called.
    activities: realActivities(db.pool, createHttpPaymentProvider({ baseUrl: 'http://127.0.0.1:9', timeoutMs: 1000 })),
  });
  running = worker.run();
});

after(async () => {
  worker?.shutdown();
  await running;
  await Promise.all([env?.teardown(), db?.drop()]);
});

const ids = new Map<string, string>();
const idOf = (customer: string) => ids.get(customer)!;

/** A running billing workflow for `customer` (no limits of its own: the quota state is simulated). */
async function subscribe(customer: string): Promise<void> {
  const { rows } = await db.pool.query<{ id: string }>(
    `insert into customers (external_id, name, currency) values ($1, $1, 'USD') returning id`,
    [customer],
  );
  ids.set(customer, rows[0]!.id);
  const terms: SubscriptionTerms = {
    subscriptionId: `sub-${customer}`,
    customer,
    customerId: idOf(customer),
    planCode: 'basic',
    limits: [],
    anchor: '2026-01-01T00:00:00.000Z',
    interval: { kind: 'calendar_month' },
  };
  await env.client.workflow.start(billingPeriodWorkflow, {
    taskQueue: TASK_QUEUE,
    workflowId: workflowIdFor(customer),
    args: [{ terms, allowedLatenessMs: 60_000, dunning: [] }],
  });
}

/** The deltas of every usageReported signal in the customer's workflow history. */
async function deltasIn(customer: string): Promise<UsageReport['deltas']> {
  const history = await env.client.workflow.getHandle(workflowIdFor(customer)).fetchHistory();
  return (history.events ?? []).flatMap((event) => {
    const signal = event.workflowExecutionSignaledEventAttributes;
    if (signal?.signalName !== usageReported.name) return [];
    return (signal.input?.payloads ?? []).flatMap((payload) => defaultPayloadConverter.fromPayload<UsageReport>(payload).deltas);
  });
}

/**
 * The usage delivered to the customer's workflow: the sum of its reports' deltas. (The workflow
 * counts from the counters, which these hand-made reports never touched.)
 */
async function usageIn(customer: string, meter = 'api_calls'): Promise<string> {
  let total = new Decimal(0);
  for (const delta of await deltasIn(customer)) if (delta.meter === meter) total = total.plus(delta.quantity);
  return total.toFixed();
}

const reached = (customer: string, usage: string) =>
  waitFor(() => usageIn(customer), { description: `${customer}'s workflow was sent usage ${usage}`, until: (u) => u === usage });

/** The meter's usage as the customer's workflow has it (from the counters). */
const workflowUsage = async (customer: string, meter = 'api_calls') =>
  (await env.client.workflow.getHandle(workflowIdFor(customer)).query(billingState)).meters[meter]?.usage ?? '0';

/** Reports delivered so far, by kind. */
async function reports(registry: Registry): Promise<{ urgent: number; slow: number }> {
  const counts = { urgent: 0, slow: 0 };
  for (const v of (await registry.getSingleMetric('usage_reports_total')!.get()).values) {
    counts[v.labels.kind as 'urgent' | 'slow'] = v.value;
  }
  return counts;
}

const usage = (customer: string, quantity: string, meter = 'api_calls') => ({
  customer,
  customerId: idOf(customer),
  meter,
  quantity,
  eventTime: new Date().toISOString(),
});

const publish = (
  store: EntitlementStore,
  customer: string,
  quota: { usage: string; nextDecision: string | null; asOf: Date; countedAt?: Date },
) =>
  store.apply({
    customerId: idOf(customer),
    meter: 'api_calls',
    blocked: false,
    resetsAt: new Date(Date.now() + 86_400_000),
    quota: { ...quota, hardLimit: '1000', state: 'ok', notified: [] },
  });

/**
 * Signalers (API processes) whose timers never fire during a test: the test runs their ticks
 * (`tick()` resolves once that tick's reports are delivered) and moves their shared clock, so
 * nothing here depends on timing. They share the published quota states, as API processes do.
 */
function manualSignalers(staggersMs: number[]) {
  const store = new EntitlementStore({ now: () => new Date() }, '/upgrade', '/top-up');
  let now = Date.now();
  const signalers = staggersMs.map((reportStaggerMs) => {
    const registry = new Registry();
    const signaler = new UsageSignaler({
      client: env.client,
      logger,
      registry,
      quotaOf: (customerId, meter) => store.quotaOf(customerId, meter),
      reportIntervalMs: INTERVAL_MS,
      reportStaggerMs,
      signalMargin: 0.1,
      tickMs: 3_600_000,
      producers: () => staggersMs.length,
      now: () => now,
    });
    return { signaler, registry };
  });
  return { signalers, store, now: () => now, advance: (ms: number) => (now += ms) };
}

function manualSignaler() {
  const { signalers, store, advance } = manualSignalers([0]);
  return { ...signalers[0]!, store, advance };
}

const retired = async (registry: Registry) => (await registry.getSingleMetric('usage_pending_retired_total')!.get()).values[0]?.value ?? 0;

describe('usage signaler', () => {
  test('far from a decision point usage waits for the slow report; near it, it is reported at the next tick', async () => {
    const { signaler, store, registry, advance } = manualSignaler();
    await Promise.all(['far-1', 'near-1', 'unlimited-1'].map(subscribe));
    const asOf = new Date();
    publish(store, 'far-1', { usage: '0', nextDecision: '1000', asOf });
    publish(store, 'near-1', { usage: '850', nextDecision: '1000', asOf });
    try {
      // 0 + 10 is far below 1000 × 0.9; 850 + 60 reaches 900; a meter without published state is never urgent.
      signaler.record([usage('far-1', '10'), usage('near-1', '60'), usage('unlimited-1', '1000000')]);
      await signaler.tick();
      assert.deepEqual(await reports(registry), { urgent: 1, slow: 0 });
      await reached('near-1', '60');

      // Slow reports: not a millisecond before the interval since the first usage.
      advance(INTERVAL_MS - 1);
      await signaler.tick();
      assert.deepEqual(await reports(registry), { urgent: 1, slow: 0 });
      assert.equal(await usageIn('far-1'), '0');
      assert.equal(await usageIn('unlimited-1'), '0');
      advance(1);
      await signaler.tick();
      assert.deepEqual(await reports(registry), { urgent: 1, slow: 2 });
      await reached('far-1', '10');
      await reached('unlimited-1', '1000000');
    } finally {
      await signaler.stop();
    }
  });

  test('what was reported since the last publish counts until a newer publish arrives', async () => {
    const { signaler, store, registry } = manualSignaler();
    await subscribe('hot-1');
    publish(store, 'hot-1', { usage: '0', nextDecision: '100', asOf: new Date(Date.now() - 1000) });
    try {
      signaler.record([usage('hot-1', '95')]);
      await signaler.tick();
      assert.deepEqual(await reports(registry), { urgent: 1, slow: 0 });
      // Nothing published since: 0 + 95 reported + 1 pending is still past 90.
      signaler.record([usage('hot-1', '1')]);
      await signaler.tick();
      assert.deepEqual(await reports(registry), { urgent: 2, slow: 0 });
      await reached('hot-1', '96');
      // The workflow decided and published its next decision point: far again.
      publish(store, 'hot-1', { usage: '96', nextDecision: '1000', asOf: new Date() });
      signaler.record([usage('hot-1', '1')]);
      await signaler.tick();
      assert.deepEqual(await reports(registry), { urgent: 2, slow: 0 });
      // No decision left: slow reports only, however much arrives.
      publish(store, 'hot-1', { usage: '96', nextDecision: null, asOf: new Date(Date.now() + 1) });
      signaler.record([usage('hot-1', '100000')]);
      await signaler.tick();
      assert.deepEqual(await reports(registry), { urgent: 2, slow: 0 });
    } finally {
      await signaler.stop();
    }
    assert.deepEqual(await reports(registry), { urgent: 2, slow: 1 });
    await reached('hot-1', '100097');
  });

  test('stop() delivers everything owed, slow usage included', async () => {
    const { signaler, store, registry } = manualSignaler();
    await Promise.all(['stop-1', 'stop-2'].map(subscribe));
    publish(store, 'stop-1', { usage: '0', nextDecision: '1000', asOf: new Date() });
    signaler.record([usage('stop-1', '3'), usage('stop-2', '4'), usage('stop-1', '5', 'tokens')]);
    await signaler.tick();
    assert.deepEqual(await reports(registry), { urgent: 0, slow: 0 });
    await signaler.stop();
    assert.deepEqual(await reports(registry), { urgent: 0, slow: 2 });
    await reached('stop-1', '3');
    await reached('stop-2', '4');
    assert.equal(await usageIn('stop-1', 'tokens'), '5');
  });
});

describe('usage signaler: one batch', () => {
  test('is reported per meter and second, each sum exact, every event counted', async () => {
    const { signaler, registry } = manualSignaler();
    await subscribe('fold-1');
    const second = Math.floor(Date.now() / 1000) * 1000;
    const at = (ms: number, quantity: string, meter = 'api_calls') => ({
      ...usage('fold-1', quantity, meter),
      eventTime: new Date(second + ms).toISOString(),
    });
    signaler.record([at(100, '0.1'), at(900, '7', 'tokens'), at(1000, '2'), at(900, '0.2'), at(100, '1.50')]);
    await signaler.stop();
    // Signals reach the history a moment after the signaler is done sending them.
    const deltas = await waitFor(() => deltasIn('fold-1'), {
      description: 'three deltas reached the workflow',
      until: (d) => d.length >= 3,
    });
    const first = new Date(second).toISOString();
    const next = new Date(second + 1000).toISOString();
    assert.deepEqual(
      deltas.map((d) => `${d.meter} ${d.at} ${d.quantity}`).sort(),
      [`api_calls ${first} 1.8`, `api_calls ${next} 2`, `tokens ${first} 7`].sort(),
    );
    assert.equal((await registry.getSingleMetric('usage_signal_events_total')!.get()).values[0]?.value, 5);
  });
});

describe('usage signalers of several API processes', () => {
  test("the first slow report's read of the counters retires what the others stored before it; they report what came after, a full interval later", async () => {
    const stagger = 5000;
    const { signalers, store, now, advance } = manualSignalers([0, stagger]);
    const [a, b] = signalers as [(typeof signalers)[0], (typeof signalers)[0]];
    await subscribe('pair-1');
    publish(store, 'pair-1', { usage: '0', nextDecision: '1000', asOf: new Date(now() - 1000), countedAt: new Date(now() - 1000) });
    try {
      a.signaler.record([usage('pair-1', '3')]);
      b.signaler.record([usage('pair-1', '4')]);
      advance(INTERVAL_MS);
      await Promise.all([a.signaler.tick(), b.signaler.tick()]);
      assert.deepEqual(await reports(a.registry), { urgent: 0, slow: 1 });
      assert.deepEqual(await reports(b.registry), { urgent: 0, slow: 0 }, 'B waits its stagger longer');
      // The workflow read the counters for A's report: they held both processes' usage.
      publish(store, 'pair-1', { usage: '7', nextDecision: '1000', asOf: new Date(now()), countedAt: new Date(now()) });
      advance(stagger);
      await b.signaler.tick();
      assert.deepEqual(await reports(b.registry), { urgent: 0, slow: 0 }, 'what B stored before the read is not reported');
      assert.equal(await retired(b.registry), 1);

      // Usage B stores after the read is reported, once its own interval and stagger have passed.
      b.signaler.record([usage('pair-1', '2')]);
      advance(INTERVAL_MS + stagger - 1);
      await b.signaler.tick();
      assert.deepEqual(await reports(b.registry), { urgent: 0, slow: 0 });
      advance(1);
      await b.signaler.tick();
      assert.deepEqual(await reports(b.registry), { urgent: 0, slow: 1 });
      await reached('pair-1', '5');
    } finally {
      await Promise.all(signalers.map((s) => s.signaler.stop()));
    }
  });

  test('each holding half of the unread usage, the processes report at once when the sum nears the decision point', async () => {
    const { signalers, store, now } = manualSignalers([0, 0]);
    const [a, b] = signalers as [(typeof signalers)[0], (typeof signalers)[0]];
    await subscribe('pair-2');
    publish(store, 'pair-2', { usage: '300', nextDecision: '500', asOf: new Date(now() - 1000), countedAt: new Date(now() - 1000) });
    try {
      // 300 + 80 + 80 = 460 reaches 500 × 0.9; either process alone (380) would not see it without the other's share.
      a.signaler.record([usage('pair-2', '80')]);
      b.signaler.record([usage('pair-2', '80')]);
      await Promise.all([a.signaler.tick(), b.signaler.tick()]);
      assert.deepEqual(await reports(a.registry), { urgent: 1, slow: 0 });
      assert.deepEqual(await reports(b.registry), { urgent: 1, slow: 0 });
      await reached('pair-2', '160');
    } finally {
      await Promise.all(signalers.map((s) => s.signaler.stop()));
    }
  });

  test('a read that publishes no count time (a run that sums reports) retires nothing', async () => {
    const { signaler, store, registry, advance } = manualSignaler();
    await subscribe('legacy-1');
    signaler.record([usage('legacy-1', '6')]);
    advance(1000);
    publish(store, 'legacy-1', { usage: '6', nextDecision: '1000', asOf: new Date(Date.now() + 60_000) });
    advance(INTERVAL_MS);
    await signaler.tick();
    assert.equal(await retired(registry), 0);
    assert.deepEqual(await reports(registry), { urgent: 0, slow: 1 });
    await reached('legacy-1', '6');
    await signaler.stop();
  });
});

describe('the API composition', () => {
  let app: KeysTestApp;
  before(async () => {
    // A report interval far beyond the test: only an urgent report can reach the workflow in time.
    app = await startKeysApp(db, {
      billing: { client: env.client, taskQueue: TASK_QUEUE, allowedLatenessMs: 60_000, dunning: [], usageReportIntervalMs: 3_600_000 },
      usageSignals: { reportIntervalSeconds: 3600, signalMargin: 0.1 },
    });
  });
  after(() => app?.close());

  test('ingested usage near a published decision point reaches the workflow within its tick', async () => {
    const admin = (await app.issue({ scopes: ['events:write', 'billing:admin', 'billing:read'] })).secret;
    const created = async (path: string, body: unknown) => assert.equal((await app.call('POST', path, admin, body)).status, 201, path);
    await created('/v1/meters', { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count' });
    await created('/v1/plans', {
      id: 'basic',
      name: 'Basic',
      currency: 'USD',
      charges: [{ meter: 'api_calls', model: 'per_unit', unit_price: '0.001' }],
      interval: { kind: 'calendar_month' },
    });
    await created('/v1/customers', { external_id: 'api-near', name: 'Near', currency: 'USD' });
    await created('/v1/subscriptions', { customer: 'api-near', plan: 'basic' });
    const { rows } = await db.pool.query<{ id: string }>(`select id from customers where external_id = 'api-near'`);
    app.entitlements.store.apply({
      customerId: rows[0]!.id,
      meter: 'api_calls',
      blocked: false,
      resetsAt: new Date(Date.now() + 86_400_000),
      quota: { usage: '8', hardLimit: '10', state: 'ok', notified: [], nextDecision: '10', asOf: new Date() },
    });
    const events = Array.from({ length: 2 }, (_, i) => ({ id: `near-${i}`, customer: 'api-near', type: 'api_call' }));
    assert.equal((await app.call('POST', '/v1/events', admin, events)).status, 200);
    await reached('api-near', '2');
    await waitFor(() => workflowUsage('api-near'), { description: "api-near's workflow counts 2", until: (u) => u === '2' });
  });
});
