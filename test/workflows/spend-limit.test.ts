import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { freePort } from '../../scripts/free-port';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import { startProviderSimulator } from '../../src/provider/simulator';
import { scopes } from '../../src/keys/principal';
import { CreditService, purchaseRefFor } from '../../src/credits/service';
import { systemClock } from '../../src/clock';
import { billingState, workflowIdFor } from '../../src/workflows/billing-period';
import { workflowsPath } from '../../src/temporal/worker';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';
import { timeSkippingEnvironment } from '../support/temporal';
import { waitFor } from '../support/wait-for';
import { realActivities } from '../support/activities';

/*
 * The spend-limit path with nothing replaced: the real API (keys, ingest, usage signaler, blocks
 * in memory), a real worker with the real activities on Postgres (the open period priced by the
 * priceSpend activity), and the billing workflow on the time-skipping server, which jumps
 * over the grace period.
 */
const taskQueue = 'spend-e2e';
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
    // Prepaid credits (the credit_only test tops up through the API).
    provider: createHttpPaymentProvider({ baseUrl: provider.url, timeoutMs: 2000 }),
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

const providerClient = () => createHttpPaymentProvider({ baseUrl: provider.url, timeoutMs: 2000 });
const call = async (method: string, path: string, body?: unknown) => {
  const res = await app.call(method, path, admin, body);
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
};
let seq = 0;
const events = (customer: string, n: number) => Array.from({ length: n }, () => ({ id: `call-${++seq}`, customer, type: 'api_call' }));
const check = (customer: string) => call('POST', '/v1/entitlements/check', { customer, meter: 'api_calls' });

describe('spend limit end to end', () => {
  before(async () => {
    assert.equal(
      (await call('POST', '/v1/meters', { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count' })).status,
      201,
    );
    const plan = {
      id: 'metered',
      name: 'Metered',
      currency: 'USD',
      base_fee: '20.00',
      charges: [{ meter: 'api_calls', model: 'per_unit', unit_price: '0.01' }],
      interval: { kind: 'calendar_month' },
    };
    assert.equal((await call('POST', '/v1/plans', plan)).status, 201);
  });

  test('usage up to the cap → grace → 402 with a top-up link → raising the cap accepts usage again', async () => {
    assert.equal((await call('POST', '/v1/customers', { external_id: 'acme', name: 'Acme', currency: 'USD' })).status, 201);
    // 5.00 USD of usage per period, 500 calls; the base fee is not usage and does not count.
    const subscribed = await call('POST', '/v1/subscriptions', {
      customer: 'acme',
      plan: 'metered',
      spend_cap: { amount: '5.00', grace_period: 'PT10M', soft_thresholds: [{ percent: 50 }] },
    });
    assert.equal(subscribed.status, 201, JSON.stringify(subscribed.body));
    assert.deepEqual(subscribed.body.spend_cap, { amount: '5.00', grace_period: 'PT10M', soft_thresholds: [{ percent: 50 }] });
    // Repeated, the same cap (amount in another notation) is a retry; other soft thresholds are other terms.
    const repeat = (softThresholds: Array<{ percent: number }>) =>
      call('POST', '/v1/subscriptions', {
        customer: 'acme',
        plan: 'metered',
        spend_cap: { amount: '5', grace_period: 'PT10M', soft_thresholds: softThresholds },
      });
    assert.equal((await repeat([{ percent: 50 }])).status, 200);
    assert.equal((await repeat([{ percent: 80 }])).status, 409);
    const handle = env.client.workflow.getHandle(workflowIdFor('acme'));

    // The first read publishes the charged meter's runway, which the signaler treats as a decision point.
    const fresh = await waitFor(() => check('acme'), {
      description: 'the runway reaches the API',
      until: (r) => r.body.spend_runway === '500',
    });
    assert.equal(fresh.body.allowed, true);
    const acmeId = (await db.pool.query<{ id: string }>(`select id from customers where external_id = 'acme'`)).rows[0]!.id;
    assert.equal(
      app.entitlements.store.quotaOf(acmeId, 'api_calls')?.nextDecision,
      '250',
      'the 50% notice decides first: 2.50 at 250 calls',
    );

    for (let i = 0; i < 5; i++) assert.equal((await call('POST', '/v1/events', events('acme', 100))).status, 200);
    const reached = await waitFor(() => handle.query(billingState), {
      description: 'the workflow priced 5.00 of usage',
      until: (s) => s.spend?.priced.spent === '5.00' && s.spend.limit.status !== 'ok',
    });
    assert.equal(reached.spend!.limit.status, 'over_limit_in_grace');
    assert.equal(reached.spend!.priced.available, '5');
    assert.equal(reached.spend!.priced.source, 'spend_cap');
    assert.deepEqual(reached.spend!.notified, ['50%']);
    const notices = await waitFor(
      async () =>
        (
          await db.pool.query<{ threshold: string; meter: string | null; payload: any }>(
            `select threshold, meter, payload from notifications where kind = 'spend_threshold_crossed'`,
          )
        ).rows,
      { description: 'the soft notice is raised', until: (rows) => rows.length > 0 },
    );
    assert.equal(notices.length, 1);
    assert.equal(notices[0]!.threshold, '50%');
    assert.equal(notices[0]!.meter, null);
    assert.deepEqual(
      { spent: notices[0]!.payload.data.spent, cap: notices[0]!.payload.data.cap, currency: notices[0]!.payload.data.currency },
      { spent: '5.00', cap: '5', currency: 'USD' },
    );
    // Within the grace period usage is still accepted, as with a hard limit.
    assert.equal((await call('POST', '/v1/events', events('acme', 1)[0])).status, 201);

    await env.sleep('11 minutes');
    await waitFor(() => handle.query(billingState), {
      description: 'the spend limit blocks',
      until: (s) => s.spend?.limit.status === 'blocked',
    });
    const refused = await waitFor(() => call('POST', '/v1/events', events('acme', 1)[0]), {
      description: 'the API refuses usage from memory',
      until: (r) => r.status === 402,
    });
    assert.match(refused.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(refused.headers.get('retry-after'), null, 'waiting adds no money: no Retry-After');
    assert.equal(refused.body.type, '/problems/spend_limit_reached');
    assert.equal(refused.body.title, 'Spend limit reached');
    assert.equal(refused.body.topUpUrl, '/top-up');
    assert.match(refused.body.detail, /spend limit/);
    const batch = await call('POST', '/v1/events', events('acme', 3));
    assert.equal(batch.status, 402);
    assert.equal(batch.body.topUpUrl, '/top-up');
    assert.deepEqual(
      batch.body.results.map((r: { reason: string }) => r.reason),
      ['spend_limit_reached', 'spend_limit_reached', 'spend_limit_reached'],
    );
    const checked = await check('acme');
    assert.equal(checked.body.allowed, false);
    assert.equal(checked.body.spend_blocked, true);
    const audit = await db.pool.query<{ n: number }>(`select count(*)::int as n from audit_log where action = 'entitlement.spend_blocked'`);
    assert.equal(audit.rows[0]!.n, 1);

    // A cap below the money's minor unit is refused, and changes nothing.
    const tooPrecise = await call('POST', `/v1/subscriptions/${subscribed.body.id}/spend-cap`, { spend_cap: { amount: '10.001' } });
    assert.equal(tooPrecise.status, 422);
    assert.equal(tooPrecise.body.reason, 'spend_cap_precision');
    assert.equal((await call('POST', `/v1/subscriptions/${subscribed.body.id}/spend-cap`, { spend_cap: { amount: 10 } })).status, 400);

    const raised = await call('POST', `/v1/subscriptions/${subscribed.body.id}/spend-cap`, { spend_cap: { amount: '10.00' } });
    assert.equal(raised.status, 200, JSON.stringify(raised.body));
    assert.deepEqual(raised.body.spend_cap, { amount: '10.00' });
    const state = await handle.query(billingState);
    assert.equal(state.spend!.limit.status, 'ok');
    await waitFor(() => call('POST', '/v1/events', events('acme', 1)[0]), {
      description: 'the API accepts usage again',
      until: (r) => r.status === 201,
    });
    // At 0.01 a call, 10.00 is reached at 1,000 calls.
    const runway = await waitFor(() => check('acme'), {
      description: 'the new runway reaches the API',
      until: (r) => r.body.spend_blocked === false && r.body.spend_runway === '1000',
    });
    assert.equal(runway.body.allowed, true);
    const changes = await db.pool.query<{ n: number }>(
      `select count(*)::int as n from audit_log where action = 'subscription.spend_cap_changed'`,
    );
    assert.equal(changes.rows[0]!.n, 1, 'the refused changes wrote nothing');
  });

  test('without a grace period the cap blocks at once; removing the cap lifts it', async () => {
    assert.equal((await call('POST', '/v1/customers', { external_id: 'globex', name: 'Globex', currency: 'USD' })).status, 201);
    const subscribed = await call('POST', '/v1/subscriptions', { customer: 'globex', plan: 'metered', spend_cap: { amount: '1.00' } });
    assert.equal(subscribed.status, 201, JSON.stringify(subscribed.body));
    await waitFor(() => check('globex'), { description: 'the runway reaches the API', until: (r) => r.body.spend_runway === '100' });

    assert.equal((await call('POST', '/v1/events', events('globex', 100))).status, 200);
    await waitFor(() => env.client.workflow.getHandle(workflowIdFor('globex')).query(billingState), {
      description: 'the workflow blocks at once',
      until: (s) => s.spend?.limit.status === 'blocked',
    });
    await waitFor(() => check('globex'), { description: 'the block reaches the API', until: (r) => r.body.spend_blocked === true });
    const refused = await call('POST', '/v1/events', events('globex', 1)[0]);
    assert.equal(refused.status, 402);
    const { rows } = await db.pool.query<{ n: number }>(
      `select count(*)::int as n from usage_events e join customers c on c.short_id = e.customer_short_id where c.external_id = 'globex'`,
    );
    assert.equal(rows[0]!.n, 100, 'the refused event was not stored');

    const removed = await call('POST', `/v1/subscriptions/${subscribed.body.id}/spend-cap`, { spend_cap: null });
    assert.equal(removed.status, 200);
    assert.equal(removed.body.spend_cap, null);
    await waitFor(() => call('POST', '/v1/events', events('globex', 1)[0]), {
      description: 'the API accepts usage again',
      until: (r) => r.status === 201,
    });
    const checked = await waitFor(() => check('globex'), { description: 'the runway is gone', until: (r) => r.body.spend_runway === null });
    assert.equal(checked.body.spend_blocked, false);
  });
});

describe('credit_only: the credit balance is the spend limit', () => {
  before(async () => {
    // Hourly periods so the test reaches the period's invoice; the meter is the one created above.
    const plan = {
      id: 'prepaid',
      name: 'Prepaid',
      currency: 'USD',
      base_fee: '1.00',
      charges: [{ meter: 'api_calls', model: 'per_unit', unit_price: '0.01' }],
      interval: { kind: 'duration', iso: 'PT1H' },
      settlement: 'credit_only',
    };
    const created = await call('POST', '/v1/plans', plan);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    // The same tariff, invoiced: what a customer moves from to credit_only.
    const invoiced = { ...plan, id: 'hourly-invoiced', name: 'Hourly invoiced', settlement: 'credit_then_invoice' };
    assert.equal((await call('POST', '/v1/plans', invoiced)).status, 201);
  });

  /** The grant was charged once at the provider (`amountMinor`), and credited with one ledger entry and one audit row. */
  const assertPurchasedOnce = async (grantId: string, amountMinor: string) => {
    const charges = await providerClient().listCharges({ invoiceId: purchaseRefFor(grantId) });
    assert.deepEqual(
      charges.map((c) => [c.status, c.amountMinor]),
      [['succeeded', amountMinor]],
    );
    const entries = await db.pool.query<{ kind: string; amount: string }>(
      `select kind, amount::text from credit_ledger_entries where grant_id = $1`,
      [grantId],
    );
    assert.deepEqual(
      entries.rows.map((e) => [e.kind, (Number(e.amount) * 100).toFixed(0)]),
      [['grant', amountMinor]],
    );
    const audited = await db.pool.query<{ n: number }>(
      `select count(*)::int as n from audit_log where action = 'credit.purchased' and subject_id = $1`,
      [grantId],
    );
    assert.equal(audited.rows[0]!.n, 1);
  };

  /** The setSpendBlock calls and signals of the run, in history order. */
  const blocksAndSignals = async (workflowId: string) => {
    const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
    return (history.events ?? []).flatMap((e) => {
      const signal = e.workflowExecutionSignaledEventAttributes?.signalName;
      if (signal) return [signal];
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled?.activityType?.name !== 'setSpendBlock') return [];
      const input = JSON.parse(Buffer.from(scheduled.input!.payloads![0]!.data!).toString()) as { blocked: boolean };
      return [input.blocked ? 'blocked' : 'unblocked'];
    });
  };

  test('a plan change to credit_only applies the balance at once: no credit, no usage', async () => {
    assert.equal((await call('POST', '/v1/customers', { external_id: 'umbrella', name: 'Umbrella', currency: 'USD' })).status, 201);
    const subscribed = await call('POST', '/v1/subscriptions', { customer: 'umbrella', plan: 'hourly-invoiced' });
    assert.equal(subscribed.status, 201, JSON.stringify(subscribed.body));
    const handle = env.client.workflow.getHandle(workflowIdFor('umbrella'));
    await waitFor(() => handle.query(billingState), { description: 'the workflow runs', until: (s) => s.planCode === 'hourly-invoiced' });
    assert.equal((await call('POST', '/v1/events', events('umbrella', 1)[0])).status, 201);

    const changed = await call('POST', `/v1/subscriptions/${subscribed.body.id}/change-plan`, {
      plan: 'prepaid',
      effective: 'immediately',
    });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    const state = await handle.query(billingState);
    assert.equal(state.spend?.limit.status, 'blocked', 'priced and blocked by the update itself');
    assert.equal(state.spend.priced.source, 'credits');
    await waitFor(() => check('umbrella'), { description: 'the block reaches the API', until: (r) => r.body.spend_blocked === true });
    assert.equal((await call('POST', '/v1/events', events('umbrella', 1)[0])).status, 402);
  });

  // Before the test that sleeps past the period: its usage is stamped with the real clock.
  test('automatic top-up: usage reaching the balance buys the top-up once through the provider, and usage goes on without a 402', async () => {
    assert.equal((await call('POST', '/v1/customers', { external_id: 'hooli', name: 'Hooli', currency: 'USD' })).status, 201);
    const welcome = { reference: 'welcome', source: 'promotional', currency: 'USD', amount: '2.00' };
    assert.equal((await call('POST', '/v1/customers/hooli/credits', welcome)).status, 201);
    const setting = await call('PUT', '/v1/customers/hooli/credits/auto-top-up', { currency: 'USD', threshold: '0.50', amount: '5.00' });
    assert.equal(setting.status, 200, JSON.stringify(setting.body));
    const subscribed = await call('POST', '/v1/subscriptions', { customer: 'hooli', plan: 'prepaid' });
    assert.equal(subscribed.status, 201, JSON.stringify(subscribed.body));
    const workflowId = workflowIdFor('hooli');
    const handle = env.client.workflow.getHandle(workflowId);

    // 2.00 of credit at 0.01 a call: 200 calls reach it, which is below any threshold.
    await waitFor(() => check('hooli'), { description: 'the runway reaches the API', until: (r) => r.body.spend_runway === '200' });
    for (let i = 0; i < 2; i++) assert.equal((await call('POST', '/v1/events', events('hooli', 100))).status, 200);
    const toppedUp = await waitFor(() => handle.query(billingState), {
      description: 'the workflow tops up and prices the period against 7.00',
      until: (s) => s.spend?.priced.spent === '2.00' && s.spend.priced.available === '7',
    });
    assert.equal(toppedUp.spend!.limit.status, 'ok');
    assert.equal(toppedUp.spend!.priced.autoTopUpBelow, '0.50');
    const lifted = await waitFor(() => check('hooli'), {
      description: 'the new runway (7.00: 700 calls) reaches the API',
      until: (r) => r.body.spend_runway === '700',
    });
    assert.equal(lifted.body.spend_blocked, false);
    assert.equal((await call('POST', '/v1/events', events('hooli', 1)[0])).status, 201);

    // One purchase, under the trigger's natural key (the subscription, the period, the 2.00 priced against).
    const periodStart = toppedUp.period.start;
    const grants = await db.pool.query<{ id: string; reference: string; source: string; amount: string; status: string }>(
      `select g.id, g.reference, g.source, g.amount::text, g.status from credit_grants g join customers c on c.id = g.customer_id
        where c.external_id = 'hooli' and g.reference like 'auto-top-up:%'`,
    );
    assert.deepEqual(
      grants.rows.map((g) => [g.reference, g.source, g.amount, g.status]),
      [[`auto-top-up:spend:${subscribed.body.id}:${periodStart}:2`, 'purchased', '5.00', 'active']],
    );
    await assertPurchasedOnce(grants.rows[0]!.id, '500');
    assert.deepEqual(
      (await blocksAndSignals(workflowId)).filter((e) => e === 'blocked'),
      [],
      'topped up before any block',
    );

    // The activity run again for the same trigger (a retry after a lost answer) finds the top-up: no second charge.
    const hooliId = (await db.pool.query<{ id: string }>(`select id from customers where external_id = 'hooli'`)).rows[0]!.id;
    const again = await new CreditService({
      pool: db.pool,
      clock: systemClock,
      provider: providerClient(),
      timers: { schedule: async () => {} },
    }).autoTopUpForSpend(
      {
        customerId: hooliId,
        customer: 'hooli',
        currency: 'USD',
        subscriptionId: subscribed.body.id,
        periodStart,
        available: '2',
        spent: '2.00',
      },
      'system',
    );
    assert.ok(again.ok);
    assert.equal(again.value.outcome, 'topped_up');
    assert.equal(again.value.outcome === 'topped_up' && again.value.grantId, grants.rows[0]!.id);
    await assertPurchasedOnce(grants.rows[0]!.id, '500');
    const balance = await call('GET', '/v1/customers/hooli/credits');
    assert.equal(balance.body.balance, '7.00');
  });

  test('usage up to the balance → 402 → a top-up lifts the block without any usage report → the invoice draws the credits', async (t) => {
    assert.equal((await call('POST', '/v1/customers', { external_id: 'initech', name: 'Initech', currency: 'USD' })).status, 201);
    // Granted before the subscription exists: nobody to tell yet, and that is no failure.
    const grant = { reference: 'welcome', source: 'promotional', currency: 'USD', amount: '5.00' };
    assert.equal((await call('POST', '/v1/customers/initech/credits', grant)).status, 201);
    const subscribed = await call('POST', '/v1/subscriptions', { customer: 'initech', plan: 'prepaid' });
    assert.equal(subscribed.status, 201, JSON.stringify(subscribed.body));
    const workflowId = workflowIdFor('initech');
    const handle = env.client.workflow.getHandle(workflowId);

    // 5.00 of credit at 0.01 a call: 500 calls; no spend cap, so no grace: blocked at once.
    await waitFor(() => check('initech'), { description: 'the runway reaches the API', until: (r) => r.body.spend_runway === '500' });
    for (let i = 0; i < 5; i++) assert.equal((await call('POST', '/v1/events', events('initech', 100))).status, 200);
    const reached = await waitFor(() => handle.query(billingState), {
      description: 'the workflow blocks at the balance',
      until: (s) => s.spend?.limit.status === 'blocked',
    });
    assert.deepEqual(
      { spent: reached.spend!.priced.spent, available: reached.spend!.priced.available, source: reached.spend!.priced.source },
      { spent: '5.00', available: '5', source: 'credits' },
    );
    // Polled without side effects: a POST accepted before the block reached the API would be billed.
    await waitFor(() => check('initech'), { description: 'the block reaches the API', until: (r) => r.body.spend_blocked === true });
    const refused = await call('POST', '/v1/events', events('initech', 1)[0]);
    assert.equal(refused.status, 402);
    assert.equal(refused.body.type, '/problems/spend_limit_reached');
    assert.equal(refused.body.topUpUrl, '/top-up');

    // The top-up alone lifts the block: a refused customer sends no usage that could re-price.
    // Purchased, so it goes through the payment provider: one charge, one ledger entry, one audit row.
    const toppedAt = Date.now();
    const topUp = await call('POST', '/v1/customers/initech/credits', {
      ...grant,
      source: 'purchased',
      reference: 'top-up-1',
      amount: '3.00',
    });
    assert.equal(topUp.status, 201, JSON.stringify(topUp.body));
    assert.equal(topUp.body.status, 'active');
    await assertPurchasedOnce(topUp.body.id, '300');
    const lifted = await waitFor(() => check('initech'), {
      description: 'the block lifts after the top-up, with the new runway (8.00 of credit: 800 calls)',
      // The block and the runway reach the API by separate publishes: both, in either order.
      until: (r) => r.body.spend_blocked === false && r.body.spend_runway === '800',
    });
    t.diagnostic(`top-up → block lifted and runway 800 in the API's memory: ${Date.now() - toppedAt} ms`);
    assert.equal(lifted.body.allowed, true);
    const history = await blocksAndSignals(workflowId);
    const blockedAt = history.indexOf('blocked');
    assert.deepEqual(
      history.slice(blockedAt),
      ['blocked', 'creditsChanged', 'unblocked'],
      'between the block and its lifting the run heard only the top-up',
    );
    assert.equal((await call('POST', '/v1/events', events('initech', 1)[0])).status, 201);

    // Spent again up to the new balance: blocked again.
    for (let i = 0; i < 3; i++) assert.equal((await call('POST', '/v1/events', events('initech', i < 2 ? 100 : 99))).status, 200);
    await waitFor(() => check('initech'), { description: 'blocked at 8.00', until: (r) => r.body.spend_blocked === true });

    // The period's invoice draws the credits: 800 calls (8.00) and the base fee (1.00), which is
    // drawn at finalization and so overshoots the balance: the 1.00 short is invoiced and flagged.
    const anchor = Date.parse(subscribed.body.anchor);
    await env.sleep(Math.max(1, anchor + 3_600_000 + 60_000 + 1000 - (await env.currentTimeMs())));
    const invoice = await waitFor(
      async () =>
        (
          await db.pool.query<{ id: string; status: string; total: string }>(
            `select i.id, i.status, i.total::text from invoices i join customers c on c.id = i.customer_id
              where c.external_id = 'initech'`,
          )
        ).rows,
      { description: 'the period is invoiced', until: (rows) => rows.length === 1 && rows[0]!.status !== 'draft' },
    );
    assert.equal(invoice[0]!.total, '1.00');
    const lines = await db.pool.query<{ type: string; amount: string }>(
      `select type, amount::text from invoice_lines where invoice_id = $1 order by position`,
      [invoice[0]!.id],
    );
    assert.deepEqual(
      lines.rows.map((l) => [l.type, l.amount]),
      [
        ['base_fee', '1.00'],
        ['usage', '8.00'],
        ['credit', '-8.00'],
      ],
    );
    const shortfall = await db.pool.query<{ details: { shortfall: string } }>(
      `select details from audit_log where action = 'invoice.credit_shortfall' and subject_id = $1`,
      [invoice[0]!.id],
    );
    assert.deepEqual(
      shortfall.rows.map((r) => r.details.shortfall),
      ['1.00'],
    );
    const balance = await call('GET', '/v1/customers/initech/credits');
    assert.equal(balance.body.balance, '0.00');

    // The next period starts with no credit left: refused until the next top-up.
    const next = await waitFor(() => handle.query(billingState), {
      description: 'the next period blocks at once',
      until: (s) => s.period.start === new Date(anchor + 3_600_000).toISOString() && s.spend?.limit.status === 'blocked',
    });
    assert.equal(next.spend!.priced.available, '0');
    await waitFor(() => check('initech'), { description: 'the block reaches the API', until: (r) => r.body.spend_blocked === true });
    assert.equal((await call('POST', '/v1/events', events('initech', 1)[0])).status, 402);
  });
});
