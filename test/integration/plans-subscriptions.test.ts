import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { pino } from 'pino';
import { createApp } from '../../src/api/app';
import { authenticate } from '../../src/api/authenticate';
import { createApiMetrics } from '../../src/api/metrics';
import { buildOpenApiDocument } from '../../src/api/openapi';
import { plansRouter } from '../../src/api/routes/plans';
import { subscriptionsRouter } from '../../src/api/routes/subscriptions';
import { unwrap } from '../../src/api/refusal';
import type { SubscriptionLifecycle } from '../../src/subscriptions/lifecycle';
import { changePlan, type Subscription } from '../../src/subscriptions/store';
import { startKeys, type Keys } from '../../src/keys/keys';
import { PlanService } from '../../src/plans/service';
import { SubscriptionService } from '../../src/subscriptions/service';
import { planSchema } from '../../src/domain/plan';
import { CustomerService } from '../../src/customers/service';
import { createCustomer } from '../../src/customers/store';
import { createMeter } from '../../src/meters/store';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { listen, type Listening } from '../support/http';
import { ManualClock, testPeppers } from '../support/keys-app';

/**
 * Test double for the billing-workflow boundary (Temporal signal-with-start), which these tests
 * do not cover: it records every call, and can fail the next one to show that a retried request
 * converges.
 */
class RecordingLifecycle implements SubscriptionLifecycle {
  calls: { step: keyof SubscriptionLifecycle; subscription: Subscription }[] = [];
  failNext = false;

  started(subscription: Subscription) {
    return this.record('started', subscription);
  }
  canceled(subscription: Subscription) {
    return this.record('canceled', subscription);
  }
  planChanged(subscription: Subscription) {
    return this.record('planChanged', subscription);
  }
  spendThresholdsChanged(subscription: Subscription) {
    return this.record('spendThresholdsChanged', subscription);
  }
  spendCapChanged(subscription: Subscription) {
    return this.record('spendCapChanged', subscription);
  }
  private async record(step: keyof SubscriptionLifecycle, subscription: Subscription) {
    this.calls.push({ step, subscription });
    if (this.failNext) {
      this.failNext = false;
      throw new Error('temporal unavailable');
    }
  }
}

const NOW = new Date('2026-03-15T12:00:00Z');
const clock = new ManualClock(NOW);
const lifecycle = new RecordingLifecycle();
let db: TestDatabase;
let keys: Keys;
let server: Listening;
let admin: string;
let adminId: string;
/** billing:read only, restricted to globex. */
let globexReader: string;

before(async () => {
  db = await createTestDatabase();
  const logger = pino({ level: 'silent' });
  keys = await startKeys({
    pool: db.pool,
    databaseUrl: db.url,
    peppers: testPeppers(),
    clock,
    logger,
    cache: { ttlSeconds: 60, maxEntries: 100 },
    defaults: { ratePerSecond: 1000, burst: 1000 },
  });
  const app = createApp({
    logger,
    readiness: {},
    authenticate: authenticate({ ...keys, logger }),
    routers: [
      plansRouter({ plans: new PlanService(db.pool) }),
      subscriptionsRouter({
        subscriptions: new SubscriptionService({ pool: db.pool, clock, customers: new CustomerService(db.pool), lifecycle }),
        clock,
      }),
    ],
    metrics: createApiMetrics(),
  });
  server = await listen(app);
  for (const [id, currency] of [
    ['acme', 'USD'],
    ['globex', 'USD'],
    ['initech', 'USD'],
    ['hooli', 'USD'],
    ['eurocorp', 'EUR'],
  ] as const) {
    await createCustomer(db.pool, { external_id: id, name: id, currency }, 'system');
  }
  await createMeter(db.pool, { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} }, 'system');
  await createMeter(
    db.pool,
    { code: 'storage_gb', name: 'Storage', event_type: 'storage', aggregation: 'max', value_property: 'gb', filter: {} },
    'system',
  );
  const issued = unwrap(
    await keys.service.create('cli', { name: 'admin', environment: 'test', scopes: ['billing:admin', 'billing:read'] }),
  );
  ({ secret: admin } = issued);
  adminId = issued.key.id;
  ({ secret: globexReader } = unwrap(
    await keys.service.create('cli', { name: 'globex', environment: 'test', scopes: ['billing:read'], customer: 'globex' }),
  ));
});
after(async () => {
  await server?.close();
  await keys?.close();
  await db?.drop();
});
beforeEach(() => {
  lifecycle.calls = [];
});

type Json = Record<string, any>;
const call = async (method: string, path: string, body?: unknown, key = admin) => {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return {
    status: res.status,
    location: res.headers.get('location'),
    contentType: res.headers.get('content-type'),
    body: (await res.json()) as Json,
  };
};

const monthly = {
  id: 'pro-2026',
  name: 'Pro',
  currency: 'USD',
  base_fee: '49.00',
  charges: [{ meter: 'api_calls', model: 'overage', included_units: '1000', unit_price: '0.002' }],
  interval: { kind: 'calendar_month' },
  limits: [
    {
      meter: 'api_calls',
      soft_thresholds: [{ percent: 80 }, { percent: 100 }],
      hard_limit: '1000',
      grace_period: 'PT1H',
      at_hard_limit: 'block',
    },
    { meter: 'storage_gb', hard_limit: '10.5', at_hard_limit: 'allow' },
  ],
};
const fiveMinutes = {
  id: 'demo-5m',
  name: 'Demo',
  currency: 'USD',
  charges: [{ meter: 'api_calls', model: 'per_unit', unit_price: '0.01' }],
  interval: { kind: 'duration', iso: 'PT5M' },
};
const enterprise = { ...monthly, id: 'enterprise-2026', name: 'Enterprise', base_fee: '499.00' };
const euro = { ...fiveMinutes, id: 'demo-eur', currency: 'EUR' };

/** The plan as the API validated it: defaults filled in, meters checked against those defined above. */
const asParsed = (plan: unknown) => planSchema({ knownMeters: new Set(['api_calls', 'storage_gb']) }).parse(plan);

const count = async (sql: string, params: unknown[] = []) =>
  (await db.pool.query<{ n: number }>(`select count(*)::int as n from ${sql}`, params)).rows[0]!.n;
/** The id of the transaction that wrote the row's current version. */
const xmin = async (sql: string, params: unknown[]) =>
  (await db.pool.query<{ x: string }>(`select xmin::text as x from ${sql}`, params)).rows.map((r) => r.x);

describe('plans', () => {
  test('create is 201, an identical retry 200, other terms under the same code 409; get and list', async () => {
    const created = await call('POST', '/v1/plans', monthly);
    assert.equal(created.status, 201);
    assert.equal(created.location, '/v1/plans/pro-2026');
    const { created_at: createdAt, ...terms } = created.body;
    assert.equal(typeof createdAt, 'string');
    // As given, with the defaults filled in (no soft thresholds on storage_gb).
    assert.deepEqual(terms, asParsed(monthly));

    // Stored as jsonb, which reorders keys: a retry with its keys in another order is still identical.
    assert.equal((await call('POST', '/v1/plans', Object.fromEntries(Object.entries(monthly).reverse()))).status, 200);
    const repriced = await call('POST', '/v1/plans', { ...monthly, base_fee: '59.00' });
    assert.equal(repriced.status, 409);
    assert.match(repriced.body.detail, /create the new terms under a new code/);
    assert.equal(repriced.body.existing.base_fee, '49.00');

    const got = await call('GET', '/v1/plans/pro-2026', undefined, globexReader);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, created.body);
    assert.equal((await call('GET', '/v1/plans/nope')).status, 404);

    for (const plan of [fiveMinutes, enterprise, euro]) assert.equal((await call('POST', '/v1/plans', plan)).status, 201);
    const page1 = await call('GET', '/v1/plans?limit=2');
    assert.deepEqual(
      page1.body.data.map((p: Json) => p.id),
      ['demo-5m', 'demo-eur'],
    );
    const page2 = await call('GET', `/v1/plans?limit=2&after=${page1.body.next_cursor}`);
    assert.deepEqual(
      page2.body.data.map((p: Json) => p.id),
      ['enterprise-2026', 'pro-2026'],
    );
    assert.equal(page2.body.next_cursor, null);

    const audit = await db.pool.query(`select actor, action from audit_log where subject_type = 'plan' and subject_id = 'pro-2026'`);
    assert.deepEqual(audit.rows, [{ actor: `key:${adminId}`, action: 'plan.created' }]);
  });

  test('invalid plans are refused naming the field, and nothing is stored', async () => {
    const before = await count('plans');
    const cases: [string, unknown, string, RegExp][] = [
      [
        'charge on an unknown meter',
        { ...fiveMinutes, id: 'x1', charges: [{ meter: 'gpu_seconds', model: 'per_unit', unit_price: '1' }] },
        '#/charges/0/meter',
        /unknown meter "gpu_seconds"/,
      ],
      [
        'limit on an unknown meter',
        { ...fiveMinutes, id: 'x2', limits: [{ meter: 'gpu_seconds', hard_limit: '5', at_hard_limit: 'block' }] },
        '#/limits/0/meter',
        /unknown meter "gpu_seconds"/,
      ],
      [
        'months as a duration',
        { ...fiveMinutes, id: 'x3', interval: { kind: 'duration', iso: 'P1M' } },
        '#/interval/iso',
        /use the calendar_month interval/,
      ],
      [
        'percent threshold without a hard limit',
        { ...fiveMinutes, id: 'x4', limits: [{ meter: 'api_calls', soft_thresholds: [{ percent: 80 }] }] },
        '#/limits/0/soft_thresholds/0/percent',
        /percent of hard_limit/,
      ],
      [
        'price as a JSON number',
        { ...fiveMinutes, id: 'x5', charges: [{ meter: 'api_calls', model: 'per_unit', unit_price: 0.01 }] },
        '#/charges/0/unit_price',
        /JSON numbers are refused/,
      ],
    ];
    for (const [name, plan, pointer, message] of cases) {
      const res = await call('POST', '/v1/plans', plan);
      assert.equal(res.status, 400, name);
      assert.equal(res.body.type, '/problems/validation_failed', name);
      const issue = res.body.errors.find((e: Json) => e.pointer === pointer);
      assert.ok(issue, `${name}: ${JSON.stringify(res.body.errors)}`);
      assert.match(issue.detail, message, name);
    }
    assert.equal(await count('plans'), before);
  });

  test('a limit may cap a defined meter the plan does not charge for', async () => {
    const res = await call('POST', '/v1/plans', {
      ...fiveMinutes,
      id: 'capped',
      limits: [{ meter: 'storage_gb', hard_limit: '1', at_hard_limit: 'block' }],
    });
    assert.equal(res.status, 201);
  });

  test('plan terms are immutable in the database; the name may change', async () => {
    await assert.rejects(db.pool.query(`update plans set base_fee = 1 where code = 'pro-2026'`), /plan terms are immutable/);
    await assert.rejects(db.pool.query(`delete from plans where code = 'capped'`), /plan terms are immutable/);
    await db.pool.query(`update plans set name = 'Pro (2026)' where code = 'capped'`);
  });

  test('reading needs billing:read, creating billing:admin and a key for every customer', async () => {
    const res = await call('POST', '/v1/plans', { ...fiveMinutes, id: 'sneaky' }, globexReader);
    assert.equal(res.status, 403);
    const { secret } = unwrap(
      await keys.service.create('cli', { name: 'globex admin', environment: 'test', scopes: ['billing:admin'], customer: 'globex' }),
    );
    const restricted = await call('POST', '/v1/plans', { ...fiveMinutes, id: 'sneaky' }, secret);
    assert.equal(restricted.status, 403);
    assert.equal(restricted.body.reason, 'customer_restricted');
  });
});

describe('subscriptions', () => {
  let acmeSubscription: string;

  test('a monthly subscription anchored on Jan 31 is in the period that ends on Mar 31; the workflow is started once', async () => {
    const res = await call('POST', '/v1/subscriptions', { customer: 'acme', plan: 'pro-2026', start: '2026-01-31T10:00:00Z' });
    assert.equal(res.status, 201);
    assert.equal(res.location, `/v1/subscriptions/${res.body.id}`);
    assert.deepEqual(
      { ...res.body, id: undefined, created_at: undefined },
      {
        id: undefined,
        customer: 'acme',
        plan: 'pro-2026',
        anchor: '2026-01-31T10:00:00.000Z',
        // No billing anchor given: the start anchors every period.
        billing_anchor: '2026-01-31T10:00:00.000Z',
        status: 'active',
        // Jan 31 → Feb 28 → Mar 31: the anchor's day, clamped to short months only.
        current_period: { start: '2026-02-28T10:00:00.000Z', end: '2026-03-31T10:00:00.000Z' },
        cancel_at: null,
        canceled_at: null,
        spend_cap: null,
        created_at: undefined,
        spend_thresholds: { amounts: [], every: null },
        pending_change: null,
      },
    );
    acmeSubscription = res.body.id;

    assert.equal(lifecycle.calls.length, 1);
    const [{ step, subscription }] = lifecycle.calls as [(typeof lifecycle.calls)[0]];
    assert.equal(step, 'started');
    assert.equal(subscription.id, acmeSubscription);
    assert.equal(subscription.customer.externalId, 'acme');
    assert.equal(subscription.anchor.toISOString(), '2026-01-31T10:00:00.000Z');
    assert.equal(subscription.status, 'active');
    assert.deepEqual(subscription.plan, asParsed(monthly));
  });

  test('the subscription and its audit entry are written by one transaction', async () => {
    const audit = await db.pool.query(`select actor, details from audit_log where action = 'subscription.created' and subject_id = $1`, [
      acmeSubscription,
    ]);
    assert.deepEqual(audit.rows, [
      { actor: `key:${adminId}`, details: { customer: 'acme', plan: 'pro-2026', anchor: '2026-01-31T10:00:00.000Z' } },
    ]);
    const [written] = await xmin('subscriptions where id = $1', [acmeSubscription]);
    assert.deepEqual(await xmin(`audit_log where action = 'subscription.created' and subject_id = $1`, [acmeSubscription]), [written]);
  });

  test('PT5M periods follow the anchor; without a start the anchor is now', async () => {
    const later = await call('POST', '/v1/subscriptions', { customer: 'initech', plan: 'demo-5m', start: '2026-03-15T11:52:30+00:00' });
    assert.equal(later.status, 201);
    assert.deepEqual(later.body.current_period, { start: '2026-03-15T11:57:30.000Z', end: '2026-03-15T12:02:30.000Z' });

    const now = await call('POST', '/v1/subscriptions', { customer: 'globex', plan: 'demo-5m' });
    assert.equal(now.status, 201);
    assert.equal(now.body.anchor, NOW.toISOString());
    assert.deepEqual(now.body.current_period, { start: '2026-03-15T12:00:00.000Z', end: '2026-03-15T12:05:00.000Z' });
  });

  test('a start still ahead reports the first period', async () => {
    const res = await call('POST', '/v1/subscriptions', { customer: 'hooli', plan: 'demo-5m', start: '2026-04-01T00:00:00Z' });
    assert.equal(res.status, 201);
    assert.deepEqual(res.body.current_period, { start: '2026-04-01T00:00:00.000Z', end: '2026-04-01T00:05:00.000Z' });
  });

  test('a second active subscription is 409 and changes nothing; repeating the same request is 200 and converges', async () => {
    const audits = await count('audit_log');
    const other = await call('POST', '/v1/subscriptions', { customer: 'acme', plan: 'enterprise-2026' });
    assert.equal(other.status, 409);
    assert.equal(other.body.existing.id, acmeSubscription);
    const otherStart = await call('POST', '/v1/subscriptions', { customer: 'acme', plan: 'pro-2026', start: '2026-02-01T00:00:00Z' });
    assert.equal(otherStart.status, 409);
    assert.equal(lifecycle.calls.length, 0);
    assert.equal(await count('audit_log'), audits);

    const again = await call('POST', '/v1/subscriptions', { customer: 'acme', plan: 'pro-2026', start: '2026-01-31T10:00:00Z' });
    assert.equal(again.status, 200);
    assert.equal(again.body.id, acmeSubscription);
    assert.deepEqual(
      lifecycle.calls.map((c) => [c.step, c.subscription.id]),
      [['started', acmeSubscription]],
    );
    assert.equal(await count(`subscriptions where customer_id = (select id from customers where external_id = 'acme')`), 1);
  });

  test('when starting the workflow fails after the commit, the client gets 503 and a retry converges', async () => {
    await createCustomer(db.pool, { external_id: 'flaky', name: 'Flaky', currency: 'USD' }, 'system');
    lifecycle.failNext = true;
    const failed = await call('POST', '/v1/subscriptions', { customer: 'flaky', plan: 'demo-5m' });
    assert.equal(failed.status, 503);
    const stored = failed.body.subscription as string;
    assert.equal(await count(`subscriptions where id = $1 and status = 'active'`, [stored]), 1);

    const retried = await call('POST', '/v1/subscriptions', { customer: 'flaky', plan: 'demo-5m' });
    assert.equal(retried.status, 200);
    assert.equal(retried.body.id, stored);
    assert.deepEqual(
      lifecycle.calls.map((c) => [c.step, c.subscription.id]),
      [
        ['started', stored],
        ['started', stored],
      ],
    );
  });

  test('unknown customer or plan, and a plan in another currency, are 422', async () => {
    const cases: [unknown, string][] = [
      [{ customer: 'nobody', plan: 'pro-2026' }, 'unknown_customer'],
      [{ customer: 'eurocorp', plan: 'nope' }, 'unknown_plan'],
      [{ customer: 'eurocorp', plan: 'pro-2026' }, 'currency_mismatch'],
    ];
    for (const [body, reason] of cases) {
      const res = await call('POST', '/v1/subscriptions', body);
      assert.equal(res.status, 422, reason);
      assert.equal(res.body.reason, reason);
    }
    const bad = await call('POST', '/v1/subscriptions', { customer: 'eurocorp', plan: 'demo-eur', start: '2026-03-15 12:00' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.errors[0].pointer, '#/start');
    assert.equal(lifecycle.calls.length, 0);
  });

  test('get by id and by customer; a customer-restricted key sees only its own', async () => {
    const byId = await call('GET', `/v1/subscriptions/${acmeSubscription}`);
    assert.equal(byId.status, 200);
    assert.equal(byId.body.plan, 'pro-2026');
    const byCustomer = await call('GET', '/v1/customers/acme/subscription');
    assert.deepEqual(byCustomer.body, byId.body);

    assert.equal((await call('GET', `/v1/subscriptions/${acmeSubscription}`, undefined, globexReader)).status, 404);
    const mismatch = await call('GET', '/v1/customers/acme/subscription', undefined, globexReader);
    assert.equal(mismatch.status, 404);
    assert.equal(mismatch.body.type, '/problems/not_found');
    const own = await call('GET', '/v1/customers/globex/subscription', undefined, globexReader);
    assert.equal(own.status, 200);
    assert.equal((await call('GET', `/v1/subscriptions/${own.body.id}`, undefined, globexReader)).status, 200);
    assert.equal((await call('POST', `/v1/subscriptions/${own.body.id}/cancel`, undefined, globexReader)).status, 403);

    assert.equal((await call('GET', '/v1/subscriptions/not-a-uuid')).status, 400);
    assert.equal((await call('GET', '/v1/subscriptions/00000000-0000-4000-8000-000000000000')).status, 404);
    assert.equal((await call('GET', '/v1/customers/eurocorp/subscription')).status, 404);
  });

  test('cancel: canceled now, audited in the same transaction, the workflow told once; a retry converges', async () => {
    clock.advance(60_000);
    const canceledAt = new Date(NOW.getTime() + 60_000).toISOString();
    const res = await call('POST', `/v1/subscriptions/${acmeSubscription}/cancel`);
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'canceled');
    assert.equal(res.body.canceled_at, canceledAt);
    assert.equal(res.body.cancel_at, canceledAt);
    assert.equal(res.body.current_period, null);
    assert.deepEqual(
      lifecycle.calls.map((c) => [c.step, c.subscription.id, c.subscription.status]),
      [['canceled', acmeSubscription, 'canceled']],
    );

    const [written] = await xmin('subscriptions where id = $1', [acmeSubscription]);
    assert.deepEqual(await xmin(`audit_log where action = 'subscription.canceled' and subject_id = $1`, [acmeSubscription]), [written]);

    const again = await call('POST', `/v1/subscriptions/${acmeSubscription}/cancel`);
    assert.equal(again.status, 200);
    assert.equal(again.body.canceled_at, canceledAt);
    assert.equal(await count(`audit_log where action = 'subscription.canceled' and subject_id = $1`, [acmeSubscription]), 1);
    assert.equal(lifecycle.calls.length, 2);

    assert.equal((await call('GET', '/v1/customers/acme/subscription')).status, 404);
    const resubscribed = await call('POST', '/v1/subscriptions', { customer: 'acme', plan: 'enterprise-2026' });
    assert.equal(resubscribed.status, 201);
    assert.notEqual(resubscribed.body.id, acmeSubscription);
    assert.equal((await call('POST', '/v1/subscriptions/00000000-0000-4000-8000-000000000000/cancel')).status, 404);
  });

  test('changePlan records the change and its audit entry in one transaction; a retry is a no-op; refusals are results', async () => {
    const { rows } = await db.pool.query<{ id: string }>(
      `select s.id from subscriptions s join customers c on c.id = s.customer_id where c.external_id = 'initech'`,
    );
    const id = rows[0]!.id;
    const effectiveAt = new Date('2026-03-15T12:01:00Z');
    const result = await changePlan(db.pool, id, 'capped', 'system', { scheduled: false, at: effectiveAt });
    assert.equal(result.outcome, 'changed');
    assert.ok(result.outcome === 'changed');
    assert.equal(result.subscription.plan.id, 'capped');
    assert.deepEqual(
      { ...result.change, id: undefined },
      { id: undefined, subscriptionId: id, fromPlan: 'demo-5m', toPlan: 'capped', effectiveAt, actor: 'system' },
    );

    const [written] = await xmin('subscription_changes where subscription_id = $1', [id]);
    assert.deepEqual(await xmin('subscriptions where id = $1', [id]), [written]);
    assert.deepEqual(await xmin(`audit_log where action = 'subscription.plan_changed' and subject_id = $1`, [id]), [written]);

    assert.equal((await changePlan(db.pool, id, 'capped', 'system', { scheduled: false, at: effectiveAt })).outcome, 'unchanged');
    assert.equal(await count('subscription_changes where subscription_id = $1', [id]), 1);
    assert.deepEqual(await changePlan(db.pool, id, 'demo-eur', 'system', { scheduled: false, at: effectiveAt }), {
      outcome: 'refused',
      reason: 'currency_mismatch',
    });
    assert.deepEqual(await changePlan(db.pool, id, 'nope', 'system', { scheduled: false, at: effectiveAt }), {
      outcome: 'refused',
      reason: 'unknown_plan',
    });
    assert.deepEqual(await changePlan(db.pool, acmeSubscription, 'demo-5m', 'system', { scheduled: false, at: effectiveAt }), {
      outcome: 'refused',
      reason: 'subscription_canceled',
    });
  });

  test('POST change-plan: 200 on the new plan, the workflow told; a retry converges; refusals are 409/422 and change nothing', async () => {
    const { rows } = await db.pool.query<{ id: string }>(
      `select s.id from subscriptions s join customers c on c.id = s.customer_id where c.external_id = 'initech'`,
    );
    const id = rows[0]!.id;
    const moved = await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'demo-5m' });
    assert.equal(moved.status, 200);
    assert.equal(moved.body.plan, 'demo-5m');
    assert.deepEqual(
      lifecycle.calls.map((c) => [c.step, c.subscription.plan.id]),
      [['planChanged', 'demo-5m']],
    );
    const again = await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'demo-5m' });
    assert.equal(again.status, 200);
    assert.equal(lifecycle.calls.length, 2);
    const changes = await count('subscription_changes where subscription_id = $1', [id]);

    lifecycle.failNext = true;
    assert.equal((await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'capped' })).status, 503);
    assert.equal((await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'capped' })).status, 200);
    assert.equal(await count('subscription_changes where subscription_id = $1', [id]), changes + 1);

    const refused = [
      [await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'nope' }), 422],
      [await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'demo-eur' }), 422],
      [await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'capped', extra: 1 }), 400],
      [await call('POST', `/v1/subscriptions/${acmeSubscription}/change-plan`, { plan: 'capped' }), 409],
      [await call('POST', '/v1/subscriptions/00000000-0000-4000-8000-000000000000/change-plan', { plan: 'capped' }), 404],
    ] as const;
    for (const [res, status] of refused) {
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.match(res.contentType ?? '', /^application\/problem\+json/);
    }
    assert.equal(await count('subscription_changes where subscription_id = $1', [id]), changes + 1);
  });

  test('PUT spend-thresholds: 200 with them, audited, the workflow told; a retry converges; bad input 400, canceled 409, changing nothing', async () => {
    const { rows } = await db.pool.query<{ id: string }>(
      `select s.id from subscriptions s join customers c on c.id = s.customer_id where c.external_id = 'initech'`,
    );
    const id = rows[0]!.id;
    const thresholds = { amounts: ['500.00', '2000'], every: '250.00' };
    const set = await call('PUT', `/v1/subscriptions/${id}/spend-thresholds`, thresholds);
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.deepEqual(set.body.spend_thresholds, thresholds);
    assert.deepEqual(
      lifecycle.calls.map((c) => [c.step, c.subscription.spendThresholds]),
      [['spendThresholdsChanged', thresholds]],
    );
    const audited = `audit_log where action = 'subscription.spend_thresholds_changed' and subject_id = $1`;
    assert.equal(await count(audited, [id]), 1);
    // The same thresholds in another notation: a retry, told to the workflow again, not audited again.
    const again = await call('PUT', `/v1/subscriptions/${id}/spend-thresholds`, { amounts: ['500.00', '2000'], every: '250.00' });
    assert.equal(again.status, 200);
    assert.equal(lifecycle.calls.length, 2);
    assert.equal(await count(audited, [id]), 1);
    assert.deepEqual((await call('GET', `/v1/subscriptions/${id}`)).body.spend_thresholds, thresholds);

    const refused = [
      [await call('PUT', `/v1/subscriptions/${id}/spend-thresholds`, { amounts: ['0'] }), 400],
      [await call('PUT', `/v1/subscriptions/${id}/spend-thresholds`, { amounts: [500] }), 400],
      [await call('PUT', `/v1/subscriptions/${id}/spend-thresholds`, { every: '-5' }), 400],
      [await call('PUT', `/v1/subscriptions/${id}/spend-thresholds`, { every: '5', extra: 1 }), 400],
      [await call('PUT', `/v1/subscriptions/${acmeSubscription}/spend-thresholds`, { every: '5' }), 409],
      [await call('PUT', '/v1/subscriptions/00000000-0000-4000-8000-000000000000/spend-thresholds', { every: '5' }), 404],
    ] as const;
    for (const [res, status] of refused) {
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.match(res.contentType ?? '', /^application\/problem\+json/);
    }
    assert.deepEqual((await call('GET', `/v1/subscriptions/${id}`)).body.spend_thresholds, thresholds);
    assert.equal(await count(audited, [id]), 1);

    // Off again: both empty.
    const off = await call('PUT', `/v1/subscriptions/${id}/spend-thresholds`, {});
    assert.deepEqual(off.body.spend_thresholds, { amounts: [], every: null });
    assert.equal(await count(audited, [id]), 2);
  });

  test('change-plan: a downgrade waits for the period end (pending_change), an upgrade or `effective: immediately` does not', async () => {
    const { rows } = await db.pool.query<{ id: string }>(
      `select s.id from subscriptions s join customers c on c.id = s.customer_id where c.external_id = 'initech'`,
    );
    const id = rows[0]!.id;
    assert.equal((await call('POST', '/v1/plans', { ...fiveMinutes, id: 'demo-5m-plus', base_fee: '1.00' })).status, 201);
    const before = lifecycle.calls.length;

    const upgraded = await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'demo-5m-plus' });
    assert.equal(upgraded.status, 200);
    assert.equal(upgraded.body.plan, 'demo-5m-plus');
    assert.equal(upgraded.body.pending_change, null);
    assert.equal(lifecycle.calls.length, before + 1);

    // Back to a plan without base fee: a downgrade, scheduled for the end of the current period; the workflow is not told now.
    const downgraded = await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'demo-5m' });
    assert.equal(downgraded.status, 200);
    assert.equal(downgraded.body.plan, 'demo-5m-plus');
    assert.deepEqual(downgraded.body.pending_change, { plan: 'demo-5m', effective_at: downgraded.body.current_period.end });
    assert.equal(lifecycle.calls.length, before + 1);
    const pending = `subscription_changes where subscription_id = $1 and applied_at is null`;
    assert.equal(await count(pending, [id]), 1);
    assert.equal((await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'demo-5m' })).status, 200);
    assert.equal(await count(pending, [id]), 1);

    // Asked at once, it replaces the pending change.
    const now = await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'capped', effective: 'immediately' });
    assert.equal(now.status, 200);
    assert.equal(now.body.plan, 'capped');
    assert.equal(now.body.pending_change, null);
    assert.equal(await count(pending, [id]), 0);
    assert.equal(await count(`audit_log where action = 'subscription.plan_change_dropped' and subject_id = $1`, [id]), 1);

    const refused = [
      [await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'pro-2026' }), 422, 'interval_mismatch'],
      [await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'demo-5m', effective: 'tomorrow' }), 400, undefined],
    ] as const;
    for (const [res, status, reason] of refused) {
      assert.equal(res.status, status, JSON.stringify(res.body));
      if (reason) assert.equal(res.body.reason, reason);
    }
    assert.equal((await call('GET', `/v1/subscriptions/${id}`)).body.plan, 'capped');

    // A change scheduled for the period end, then asked for at once: it takes effect now.
    const scheduled = await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'demo-5m', effective: 'period_end' });
    assert.equal(scheduled.body.pending_change?.plan, 'demo-5m');
    const atOnce = await call('POST', `/v1/subscriptions/${id}/change-plan`, { plan: 'demo-5m', effective: 'immediately' });
    assert.equal(atOnce.status, 200);
    assert.equal(atOnce.body.plan, 'demo-5m');
    assert.equal(atOnce.body.pending_change, null);
    assert.equal(await count(pending, [id]), 0);
  });

  test('the routes and schemas are in the OpenAPI document', () => {
    const doc = buildOpenApiDocument();
    for (const path of [
      '/v1/plans',
      '/v1/plans/{code}',
      '/v1/subscriptions',
      '/v1/subscriptions/{id}',
      '/v1/subscriptions/{id}/cancel',
      '/v1/subscriptions/{id}/change-plan',
      '/v1/subscriptions/{id}/spend-thresholds',
      '/v1/customers/{externalId}/subscription',
    ]) {
      assert.ok(doc.paths?.[path], path);
    }
    for (const schema of ['Plan', 'StoredPlan', 'Subscription', 'SubscriptionInput', 'BillingInterval', 'MeterLimit']) {
      assert.ok(doc.components?.schemas?.[schema], schema);
    }
  });
});
