import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WorkflowContinuedAsNewError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { freePort } from '../../scripts/free-port';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import { startProviderSimulator } from '../../src/provider/simulator';
import { scopes } from '../../src/keys/principal';
import { Decimal } from '../../src/domain/money';
import { billingState, workflowIdFor } from '../../src/workflows/billing-period';
import { workflowsPath } from '../../src/temporal/worker';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';
import { timeSkippingEnvironment } from '../support/temporal';
import { waitFor } from '../support/wait-for';
import { realActivities } from '../support/activities';

/*
 * The whole quota path with nothing replaced: the real API (keys, ingest, usage signaler,
 * entitlements in memory), a real worker with the real activities on Postgres, and the billing
 * workflow on the time-skipping server, which jumps over the grace period.
 */
const taskQueue = 'quota-e2e';
let env: TestWorkflowEnvironment;
let db: TestDatabase;
let app: KeysTestApp;
let worker: Worker;
let running: Promise<void>;
let admin: string;
let provider: Awaited<ReturnType<typeof startProviderSimulator>>;

before(async () => {
  const [testEnv, bundle, database] = await Promise.all([
    timeSkippingEnvironment(),
    bundleWorkflowCode({ workflowsPath }),
    createTestDatabase(),
  ]);
  env = testEnv;
  db = database;
  provider = await startProviderSimulator({ port: await freePort() });
  app = await startKeysApp(db, {
    billing: { client: env.client, taskQueue, allowedLatenessMs: 60_000, dunning: [], usageReportIntervalMs: 300_000 },
  });
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: bundle,
    activities: realActivities(db.pool, provider.url),
  });
  running = worker.run();
  admin = (await app.issue({ scopes: [...scopes] })).secret;
});
after(async () => {
  await app?.close();
  worker?.shutdown();
  await running;
  await env?.teardown();
  await provider?.close();
  await db?.drop();
});

const call = async (method: string, path: string, body?: unknown) => {
  const res = await app.call(method, path, admin, body);
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
};
let seq = 0;
const calls = (n: number) => Array.from({ length: n }, () => ({ id: `call-${++seq}`, customer: 'acme', type: 'api_call' }));

const metric = async (name: string) => {
  const text = await (await fetch(`${app.url}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
};

describe('quota enforcement end to end', () => {
  test('subscribe → usage signalled in batches → hard limit → grace → blocked → 429 → upgrade → accepted again', async () => {
    assert.equal((await call('POST', '/v1/customers', { external_id: 'acme', name: 'Acme', currency: 'USD' })).status, 201);
    assert.equal(
      (await call('POST', '/v1/meters', { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count' })).status,
      201,
    );
    const plan = (id: string, hardLimit: string) => ({
      id,
      name: id,
      currency: 'USD',
      charges: [{ meter: 'api_calls', model: 'per_unit', unit_price: '0.01' }],
      interval: { kind: 'calendar_month' },
      limits: [
        {
          meter: 'api_calls',
          soft_thresholds: [{ percent: 80 }, { percent: 100 }],
          hard_limit: hardLimit,
          grace_period: 'PT10M',
          at_hard_limit: 'block',
        },
      ],
    });
    assert.equal((await call('POST', '/v1/plans', plan('small', '1000'))).status, 201);
    assert.equal((await call('POST', '/v1/plans', plan('large', '100000'))).status, 201);
    const subscribed = await call('POST', '/v1/subscriptions', { customer: 'acme', plan: 'small' });
    assert.equal(subscribed.status, 201, JSON.stringify(subscribed.body));
    const handle = env.client.workflow.getHandle(workflowIdFor('acme'));
    // The workflow's first read publishes the meter's decision points. Usage stored before the API
    // knows them waits for the slow report (or is taken in by that first read): no signal at all.
    const { rows: ids } = await db.pool.query<{ id: string }>(`select id from customers where external_id = 'acme'`);
    const published = await waitFor(async () => app.entitlements.store.quotaOf(ids[0]!.id, 'api_calls'), {
      description: 'the workflow published the quota state',
      until: (q) => q?.nextDecision === '800',
    });
    // With when it read the counters (no later than it evaluated them): API processes retire what they stored before.
    assert.ok(published!.countedAt && published!.countedAt <= published!.asOf, JSON.stringify(published));

    // 1,200 events in 12 batches: over the hard limit of 1,000, yet only a handful of signals. The
    // last batch is the one that crosses the hard limit: usage past it decides nothing more and waits
    // for the slow report (5 minutes here), so a batch after the crossing would reach the workflow late.
    const signalsBefore = await metric('usage_signals_total');
    for (let i = 0; i < 11; i++) assert.equal((await call('POST', '/v1/events', calls(90))).status, 200);
    assert.equal((await call('POST', '/v1/events', calls(210))).status, 200);
    // Usage can be counted while the evaluation of an earlier report still runs its activities: wait for the one of all 1,200.
    const state = await waitFor(() => handle.query(billingState), {
      description: 'usage reaches the workflow and is evaluated',
      until: (s) =>
        s.meters.api_calls?.usage === '1200' && s.meters.api_calls.notified.length === 2 && s.meters.api_calls.limit.status !== 'ok',
    });
    assert.equal(state.meters.api_calls!.limit.status, 'over_limit_in_grace');
    assert.deepEqual(state.meters.api_calls!.notified, ['80%', '100%']);
    // The signaler counts a signal once Temporal answered it, which can be after the workflow already read the totals.
    const signals = await waitFor(async () => (await metric('usage_signals_total')) - signalsBefore, {
      description: 'the signaler counted its signals',
      until: (n) => n >= 1,
    });
    assert.ok(signals >= 1 && signals <= 6, `1,200 events took ${signals} signals`);
    // A crossing is recorded in the workflow before its notify activity writes the notification.
    const outbox = await waitFor(
      async () => (await db.pool.query<{ kind: string }>(`select kind from notifications order by created_at`)).rows,
      {
        description: 'the notify activities ran',
        until: (rows) => rows.length >= 2,
      },
    );
    assert.equal(outbox.length, 2, 'one notification per soft threshold');

    // The check answers from memory what the workflow published: usage, limit, what remains, thresholds.
    const inGrace = await waitFor(() => call('POST', '/v1/entitlements/check', { customer: 'acme', meter: 'api_calls', quantity: '5' }), {
      description: 'the published quota reaches the API',
      until: (r) => r.body.usage === '1200',
    });
    assert.deepEqual(
      {
        allowed: inGrace.body.allowed,
        limit_state: inGrace.body.limit_state,
        hard_limit: inGrace.body.hard_limit,
        remaining: inGrace.body.remaining,
        notified: inGrace.body.thresholds_notified,
      },
      { allowed: true, limit_state: 'over_limit_in_grace', hard_limit: '1000', remaining: '0', notified: ['80%', '100%'] },
    );
    assert.equal(inGrace.body.resets_at, state.period.end);

    // Within the grace period usage is still accepted.
    assert.equal((await call('POST', '/v1/events', calls(1))).status, 200);

    await env.sleep('11 minutes');
    await waitFor(() => handle.query(billingState), {
      description: 'the meter is blocked',
      until: (s) => s.meters.api_calls?.limit.status === 'blocked',
    });
    const refused = await waitFor(() => call('POST', '/v1/events', calls(1)[0]), {
      description: 'the API refuses the blocked meter',
      until: (r) => r.status === 429,
    });
    assert.match(refused.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    assert.match(refused.body.type, /quota_exceeded$/);
    assert.ok(refused.body.upgrade_url);
    const checked = await call('POST', '/v1/entitlements/check', { customer: 'acme', meter: 'api_calls' });
    assert.equal(checked.body.allowed, false);
    const { rows: blockedRows } = await db.pool.query(`select count(*)::int as n from audit_log where action = 'entitlement.blocked'`);
    assert.equal(blockedRows[0].n, 1);

    const upgraded = await call('POST', `/v1/subscriptions/${subscribed.body.id}/change-plan`, { plan: 'large' });
    assert.equal(upgraded.status, 200, JSON.stringify(upgraded.body));
    const after = await handle.query(billingState);
    assert.equal(after.planCode, 'large');
    assert.equal(after.meters.api_calls!.limit.status, 'ok');
    await waitFor(() => call('POST', '/v1/events', calls(1)[0]), {
      description: 'the API accepts usage again',
      until: (r) => r.status === 201,
    });
    const afterUpgrade = await waitFor(() => call('POST', '/v1/entitlements/check', { customer: 'acme', meter: 'api_calls' }), {
      description: 'the new limit reaches the API',
      until: (r) => r.body.hard_limit === '100000',
    });
    assert.equal(afterUpgrade.body.allowed, true);
    assert.equal(afterUpgrade.body.limit_state, 'ok');
    assert.equal(new Decimal(afterUpgrade.body.remaining).plus(afterUpgrade.body.usage).toFixed(), '100000');
  });

  test('cancel: the final period ends at the cancellation; a new subscription while it closes continues the same workflow', async () => {
    const { body: current } = await call('GET', '/v1/customers/acme/subscription');
    const handle = env.client.workflow.getHandle(workflowIdFor('acme'));
    const canceled = await call('POST', `/v1/subscriptions/${current.id}/cancel`);
    assert.equal(canceled.status, 200);
    const closing = await waitFor(() => handle.query(billingState), {
      description: 'the workflow learns of the cancellation',
      until: (s) => s.canceled,
    });
    assert.equal(closing.billedUntil, canceled.body.canceled_at);

    // Re-subscribed before the old run closed: the run closes the final period, then continues as the new subscription.
    const { runId } = await handle.describe();
    const again = await call('POST', '/v1/subscriptions', { customer: 'acme', plan: 'small' });
    assert.equal(again.status, 201);
    // The closing run issues the final invoice after the lateness, then continues as the new subscription.
    await assert.rejects(
      env.client.workflow.getHandle(handle.workflowId, runId, { followRuns: false }).result(),
      WorkflowContinuedAsNewError,
    );
    const next = await waitFor(() => handle.query(billingState), {
      description: 'the new subscription runs',
      until: (s) => s.subscriptionId === again.body.id,
    });
    assert.equal(next.canceled, false);
    // The final invoice covers [period start, cancellation) and is collected like any other.
    const finalInvoice = async () =>
      (
        await db.pool.query<{ id: string; period_end: Date; status: string }>(
          'select id, period_end, status from invoices where subscription_id = $1',
          [current.id],
        )
      ).rows;
    assert.deepEqual(
      (await finalInvoice()).map((r) => r.period_end.toISOString()),
      [canceled.body.canceled_at],
    );
    const [paid] = await waitFor(finalInvoice, { description: 'the final invoice is paid', until: (rows) => rows[0]?.status === 'paid' });
    const charges = await createHttpPaymentProvider({ baseUrl: provider.url, timeoutMs: 2000 }).listCharges({ invoiceId: paid!.id });
    assert.deepEqual(
      charges.map((c) => c.status),
      ['succeeded'],
    );
  });
});
