import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { pino } from 'pino';
import { createApp } from '../../src/api/app';
import { authenticate } from '../../src/api/authenticate';
import { createApiMetrics } from '../../src/api/metrics';
import { invoicesRouter } from '../../src/api/routes/invoices';
import { plansRouter } from '../../src/api/routes/plans';
import { subscriptionsRouter } from '../../src/api/routes/subscriptions';
import { unwrap } from '../../src/api/refusal';
import { CustomerService } from '../../src/customers/service';
import { createCustomer } from '../../src/customers/store';
import { InvoiceService } from '../../src/invoices/service';
import { startKeys, type Keys } from '../../src/keys/keys';
import { createMeter } from '../../src/meters/store';
import { ChargeHistory } from '../../src/payments/charge-history';
import { PlanService } from '../../src/plans/service';
import type { SubscriptionLifecycle } from '../../src/subscriptions/lifecycle';
import { SubscriptionService } from '../../src/subscriptions/service';
import type { Subscription } from '../../src/subscriptions/store';
import { termsOf } from '../../src/subscriptions/temporal-lifecycle';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { listen, type Listening } from '../support/http';
import { ManualClock, testPeppers } from '../support/keys-app';
import { storeEvents } from '../support/usage-events';

/*
 * A subscription with a billing anchor, through the API: subscribed on Mar 17 with periods on the
 * 1st of each month, its first period is [Mar 17, Apr 1) and the upcoming invoice bills the base
 * fee for 15 of March's 31 days, and only usage from the start. The workflow boundary is recorded,
 * not run (test/workflows/billing-anchor.test.ts runs it).
 */

const clock = new ManualClock(new Date('2026-03-20T12:00:00Z'));
const started: Subscription[] = [];
const lifecycle: SubscriptionLifecycle = {
  started: async (s) => void started.push(s),
  canceled: async () => {},
  planChanged: async () => {},
  spendThresholdsChanged: async () => {},
  spendCapChanged: async () => {},
};
let db: TestDatabase;
let keys: Keys;
let server: Listening;
let admin: string;
let customerId: string;
let meterId: string;

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
  const customers = new CustomerService(db.pool);
  const app = createApp({
    logger,
    readiness: {},
    authenticate: authenticate({ ...keys, logger }),
    routers: [
      plansRouter({ plans: new PlanService(db.pool) }),
      subscriptionsRouter({ subscriptions: new SubscriptionService({ pool: db.pool, clock, customers, lifecycle }), clock }),
      invoicesRouter(new InvoiceService(db.pool, clock, customers), new ChargeHistory(db.pool), { lookbackInvoices: 3 }),
    ],
    metrics: createApiMetrics(),
  });
  server = await listen(app);
  customerId = (await createCustomer(db.pool, { external_id: 'acme', name: 'Acme', currency: 'USD' }, 'system')).customer.id;
  meterId = (
    await createMeter(db.pool, { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} }, 'system')
  ).meter.id;
  ({ secret: admin } = unwrap(
    await keys.service.create('cli', { name: 'admin', environment: 'test', scopes: ['billing:admin', 'billing:read'] }),
  ));
  const plan = {
    id: 'monthly-31',
    name: 'Monthly',
    currency: 'USD',
    base_fee: '31.00',
    charges: [{ meter: 'api_calls', model: 'per_unit', unit_price: '0.01' }],
    interval: { kind: 'calendar_month' },
  };
  assert.equal((await call('POST', '/v1/plans', plan)).status, 201);
});
after(async () => {
  await server?.close();
  await keys?.close();
  await db?.drop();
});
beforeEach(() => {
  started.length = 0;
});

type Json = Record<string, any>;
async function call(method: string, path: string, body?: unknown) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, contentType: res.headers.get('content-type'), body: (await res.json()) as Json };
}
const subscriptions = async () => (await db.pool.query<{ n: number }>('select count(*)::int as n from subscriptions')).rows[0]!.n;

test('a billing anchor that is not an RFC 3339 instant is a 400 problem and changes nothing', async () => {
  for (const billingAnchor of ['2026-01-01', '2026-01-01T00:00:00', 'next monday', 1767225600000, '']) {
    const res = await call('POST', '/v1/subscriptions', { customer: 'acme', plan: 'monthly-31', billing_anchor: billingAnchor });
    assert.equal(res.status, 400, String(billingAnchor));
    assert.match(res.contentType ?? '', /^application\/problem\+json/);
    assert.equal(res.body.type, '/problems/validation_failed');
    assert.ok(
      res.body.errors.some((e: Json) => e.pointer === '#/billing_anchor'),
      JSON.stringify(res.body.errors),
    );
  }
  assert.equal(await subscriptions(), 0);
  assert.equal(started.length, 0);
});

test('subscribed on Mar 17 with a billing anchor on the 1st: first period [Mar 17, Apr 1), base fee 31.00 × 15/31', async () => {
  const res = await call('POST', '/v1/subscriptions', {
    customer: 'acme',
    plan: 'monthly-31',
    start: '2026-03-17T00:00:00Z',
    billing_anchor: '2026-01-01T00:00:00+00:00',
  });
  assert.equal(res.status, 201);
  assert.equal(res.body.anchor, '2026-03-17T00:00:00.000Z');
  assert.equal(res.body.billing_anchor, '2026-01-01T00:00:00.000Z');
  assert.deepEqual(res.body.current_period, { start: '2026-03-17T00:00:00.000Z', end: '2026-04-01T00:00:00.000Z' });
  // The workflow is told the billing anchor, and derives its periods from it.
  assert.equal(started.length, 1);
  assert.equal(termsOf(started[0]!).billingAnchor, '2026-01-01T00:00:00.000Z');

  // Usage before the start is not this subscription's; 12 calls after it are (0.12).
  await storeEvents(db.pool, { customerId, meterId, from: new Date('2026-03-10T08:00:00Z'), count: 5 });
  await storeEvents(db.pool, { customerId, meterId, from: new Date('2026-03-18T08:00:00Z'), count: 12 });
  const upcoming = await call('GET', '/v1/invoices/upcoming?customer=acme');
  assert.equal(upcoming.status, 200);
  assert.deepEqual(upcoming.body.period, { start: '2026-03-17T00:00:00.000Z', end: '2026-04-01T00:00:00.000Z' });
  assert.deepEqual(
    upcoming.body.lines.map((l: Json) => [l.type, l.quantity, l.amount]),
    [
      ['base_fee', null, '15.00'],
      ['usage', '12', '0.12'],
    ],
  );
  assert.match(
    upcoming.body.lines[0].description,
    /prorated: 2026-03-17T00:00:00\.000Z – 2026-04-01T00:00:00\.000Z, 48\.3871% of the period/,
  );
  assert.equal(upcoming.body.total, '15.12');

  // The same request again is a retry; another billing anchor is another subscription (409).
  const again = await call('POST', '/v1/subscriptions', {
    customer: 'acme',
    plan: 'monthly-31',
    start: '2026-03-17T00:00:00Z',
    billing_anchor: '2026-01-01T00:00:00Z',
  });
  assert.equal(again.status, 200);
  assert.equal(again.body.id, res.body.id);
  const other = await call('POST', '/v1/subscriptions', {
    customer: 'acme',
    plan: 'monthly-31',
    start: '2026-03-17T00:00:00Z',
    billing_anchor: '2026-01-15T00:00:00Z',
  });
  assert.equal(other.status, 409);
  assert.equal(await subscriptions(), 1);

  // After the boundary the periods are whole months on the anchor.
  clock.advance(20 * 86_400_000);
  const later = await call('GET', `/v1/subscriptions/${res.body.id}`);
  assert.deepEqual(later.body.current_period, { start: '2026-04-01T00:00:00.000Z', end: '2026-05-01T00:00:00.000Z' });
});

test('without a billing anchor the start anchors every period, as before', async () => {
  await createCustomer(db.pool, { external_id: 'globex', name: 'Globex', currency: 'USD' }, 'system');
  const res = await call('POST', '/v1/subscriptions', { customer: 'globex', plan: 'monthly-31', start: '2026-03-17T00:00:00Z' });
  assert.equal(res.status, 201);
  assert.equal(res.body.billing_anchor, '2026-03-17T00:00:00.000Z');
  assert.equal(termsOf(started[0]!).billingAnchor, undefined);
  const stored = await db.pool.query('select billing_anchor from subscriptions where id = $1', [res.body.id]);
  assert.equal(stored.rows[0].billing_anchor, null);
});

test('the first period must end by 9999-12-31 on the billing anchor’s schedule, not the start’s', async () => {
  await createCustomer(db.pool, { external_id: 'initech', name: 'Initech', currency: 'USD' }, 'system');
  const start = '9999-12-15T00:00:00Z';
  // On the 1st, the first period would end on 10000-01-01.
  const refused = await call('POST', '/v1/subscriptions', {
    customer: 'initech',
    plan: 'monthly-31',
    start,
    billing_anchor: '2026-01-01T00:00:00Z',
  });
  assert.equal(refused.status, 422);
  assert.equal(refused.body.reason, 'start_out_of_range');
  assert.equal(started.length, 0);
  // On the 31st, it ends on 9999-12-31: as a start without a billing anchor could not.
  const res = await call('POST', '/v1/subscriptions', {
    customer: 'initech',
    plan: 'monthly-31',
    start,
    billing_anchor: '2026-01-31T00:00:00Z',
  });
  assert.equal(res.status, 201);
  assert.deepEqual(res.body.current_period, { start: '9999-12-15T00:00:00.000Z', end: '9999-12-31T00:00:00.000Z' });
});
