import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { pino } from 'pino';
import { countQueries } from '../../scripts/query-counter';
import { createPublishQuota, createSetEntitlement } from '../../src/activities/set-entitlement';
import { systemClock } from '../../src/clock';
import { ENTITLEMENT_LISTENER_APPLICATION_NAME } from '../../src/entitlements/entitlements';
import type { Queryable } from '../../src/db/transaction';
import { ApiProcessCount } from '../../src/metering/api-process-count';
import { createCustomer } from '../../src/customers/store';
import { createMeter } from '../../src/meters/store';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';
import { waitFor } from '../support/wait-for';

/**
 * Two API instances (each with its own pool and LISTEN connections) on one database, and the
 * billing workflow's setEntitlement activity writing to it: a block reaches both through LISTEN/NOTIFY.
 */
let db: TestDatabase;
let one: KeysTestApp;
let two: KeysTestApp;
let ids: Record<'acme' | 'globex', string>;
let admin: string;
const setEntitlement = (...args: Parameters<ReturnType<typeof createSetEntitlement>>) =>
  createSetEntitlement({ pool: db.pool, clock: systemClock })(...args);
const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString();

before(async () => {
  db = await createTestDatabase();
  [one, two] = await Promise.all([startKeysApp(db), startKeysApp(db)]);
  const acme = await createCustomer(db.pool, { external_id: 'acme', name: 'Acme', currency: 'USD' }, 'system');
  const globex = await createCustomer(db.pool, { external_id: 'globex', name: 'Globex', currency: 'USD' }, 'system');
  ids = { acme: acme.customer.id, globex: globex.customer.id };
  await createMeter(
    db.pool,
    { code: 'tokens', name: 'Tokens', event_type: 'tokens', aggregation: 'sum', value_property: 'tokens', filter: {} },
    'system',
  );
  await createMeter(db.pool, { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} }, 'system');
  admin = (await one.issue({ scopes: ['events:write', 'usage:read'] })).secret;
});
after(async () => {
  await Promise.all([one?.close(), two?.close()]);
  await db?.drop();
});

let seq = 0;
const event = (type: 'tokens' | 'api_call', customer = 'acme') => ({
  id: `e-${++seq}`,
  customer,
  type,
  properties: type === 'tokens' ? { tokens: '3' } : {},
});
const ingest = (app: KeysTestApp, body: unknown, key = admin) => app.call('POST', '/v1/events', key, body);
const check = (app: KeysTestApp, body: unknown, key = admin) => app.call('POST', '/v1/entitlements/check', key, body);
/** JSON answers, checked field by field. */
const json = async (res: Response): Promise<any> => res.json();

/** Polls until `ok` holds: blocks reach the API processes through LISTEN/NOTIFY, asynchronously. */
const until = (description: string, ok: () => Promise<boolean> | boolean) => waitFor(ok, { description });

const refusesTokens = async (app: KeysTestApp) => (await ingest(app, event('tokens'))).status === 429;
const acceptsTokens = async (app: KeysTestApp) => (await ingest(app, event('tokens'))).status === 201;

async function auditOf(customerId: string, meter: string) {
  const { rows } = await db.pool.query<{ actor: string; action: string; details: Record<string, unknown> }>(
    'select actor, action, details from audit_log where subject_type = $1 and subject_id = $2 order by id',
    ['entitlement', `${customerId}/${meter}`],
  );
  return rows;
}

describe('setEntitlement activity', () => {
  test('is idempotent: the same decision twice is one row and one audit entry; each change is audited as system', async () => {
    const periodEnd = inAnHour();
    await setEntitlement({ customerId: ids.globex, meter: 'api_calls', blocked: true, periodEnd });
    await setEntitlement({ customerId: ids.globex, meter: 'api_calls', blocked: true, periodEnd });
    const { rows } = await db.pool.query('select blocked, reason, resets_at from entitlements where customer_id = $1', [ids.globex]);
    assert.deepEqual(rows, [{ blocked: true, reason: 'hard_limit', resets_at: new Date(periodEnd) }]);
    assert.deepEqual(await auditOf(ids.globex, 'api_calls'), [
      {
        actor: 'system',
        action: 'entitlement.blocked',
        details: { customer_id: ids.globex, meter: 'api_calls', reason: 'hard_limit', resets_at: periodEnd },
      },
    ]);

    await setEntitlement({ customerId: ids.globex, meter: 'api_calls', blocked: false, periodEnd });
    await setEntitlement({ customerId: ids.globex, meter: 'api_calls', blocked: false, periodEnd });
    const audit = await auditOf(ids.globex, 'api_calls');
    assert.deepEqual(
      audit.map((a) => a.action),
      ['entitlement.blocked', 'entitlement.unblocked'],
    );
    assert.equal((await db.pool.query('select blocked from entitlements where customer_id = $1', [ids.globex])).rows[0].blocked, false);
  });

  test('lifting a block that was never set writes nothing', async () => {
    await setEntitlement({ customerId: ids.globex, meter: 'tokens', blocked: false, periodEnd: inAnHour() });
    assert.equal(
      (await db.pool.query('select 1 from entitlements where customer_id = $1 and meter = $2', [ids.globex, 'tokens'])).rowCount,
      0,
    );
    assert.deepEqual(await auditOf(ids.globex, 'tokens'), []);
  });

  test('an unknown meter or customer fails without retries', async () => {
    for (const input of [
      { customerId: ids.globex, meter: 'teleports', blocked: true, periodEnd: inAnHour() },
      { customerId: '00000000-0000-4000-8000-000000000000', meter: 'tokens', blocked: true, periodEnd: inAnHour() },
    ]) {
      await assert.rejects(
        setEntitlement(input),
        (err: unknown) => err instanceof ApplicationFailure && err.nonRetryable && err.type === 'unknown_customer_or_meter',
      );
    }
  });
});

describe('enforcement in every API process', () => {
  test('both instances refuse ingest for a blocked meter once setEntitlement commits, and accept again once it is lifted', async () => {
    assert.ok(await acceptsTokens(one));
    const periodEnd = inAnHour();
    await setEntitlement({ customerId: ids.acme, meter: 'tokens', blocked: true, periodEnd });
    await until('both instances refuse', async () => (await refusesTokens(one)) && (await refusesTokens(two)));

    // One event: 429 problem+json with the reset time, the upgrade link and Retry-After.
    const res = await ingest(two, event('tokens'));
    assert.equal(res.status, 429);
    assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
    const retryAfter = Number(res.headers.get('retry-after'));
    assert.ok(retryAfter > 3590 && retryAfter <= 3600, `Retry-After ${retryAfter}`);
    const body = await json(res);
    assert.equal(body.type, '/problems/quota_exceeded');
    assert.equal(body.reason, 'quota_exceeded');
    assert.equal(body.resets_at, periodEnd);
    assert.equal(body.upgrade_url, '/upgrade');
    assert.match(body.detail, /tokens/);

    // A batch: the blocked meter's event is rejected, the others are stored.
    const batch = await ingest(one, [event('tokens'), event('api_call'), event('tokens', 'globex')]);
    assert.equal(batch.status, 200);
    const result = await json(batch);
    assert.deepEqual(
      result.results.map((r: { status: string; reason?: string }) => [r.status, r.reason]),
      [
        ['rejected', 'quota_exceeded'],
        ['accepted', undefined],
        ['accepted', undefined],
      ],
    );
    assert.equal(result.results[0].resets_at, periodEnd);
    assert.equal(result.results[0].upgrade_url, '/upgrade');

    // A batch of which nothing could be stored for the quota is a 429 too.
    const refused = await ingest(one, [event('tokens'), event('tokens')]);
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get('retry-after')) > 3590);
    assert.equal((await json(refused)).rejected, 2);

    await setEntitlement({ customerId: ids.acme, meter: 'tokens', blocked: false, periodEnd });
    await until('both instances accept', async () => (await acceptsTokens(one)) && (await acceptsTokens(two)));
  });

  test('an operator changing the table directly reaches every instance too', async () => {
    await db.pool.query(
      `insert into entitlements (customer_id, meter, blocked, reason, resets_at, updated_at) values ($1, 'api_calls', true, 'hard_limit', $2, now())`,
      [ids.acme, inAnHour()],
    );
    await until(
      'the block arrived',
      () => one.entitlements.store.isBlocked(ids.acme, 'api_calls') && two.entitlements.store.isBlocked(ids.acme, 'api_calls'),
    );
    await db.pool.query(`delete from entitlements where customer_id = $1 and meter = 'api_calls'`, [ids.acme]);
    await until(
      'the block lifted',
      () => !one.entitlements.store.isBlocked(ids.acme, 'api_calls') && !two.entitlements.store.isBlocked(ids.acme, 'api_calls'),
    );
  });
});

describe('counting API processes', () => {
  test('each is counted once, by its entitlement listener in this database; the last count stands while PostgreSQL cannot answer', async () => {
    const logger = pino({ level: 'silent' });
    const processes = new ApiProcessCount(db.pool, logger);
    processes.stop();
    await processes.refresh();
    assert.equal(processes.value, 2, 'the two API instances of this file');
    const third = await startKeysApp(db);
    await processes.refresh();
    assert.equal(processes.value, 3);
    await third.close();
    await until('the closed one no longer counted', async () => {
      await processes.refresh();
      return processes.value === 2;
    });
    let down = false;
    const flaky: Queryable = {
      query: ((text: string, values?: unknown[]) =>
        down ? Promise.reject(new Error('connection refused')) : db.pool.query(text, values)) as Queryable['query'],
    };
    const seen = new ApiProcessCount(flaky, logger);
    seen.stop();
    await seen.refresh();
    assert.equal(seen.value, 2);
    down = true;
    await seen.refresh();
    assert.equal(seen.value, 2, 'the last count stands');
    const never = new ApiProcessCount(flaky, logger);
    never.stop();
    await never.refresh();
    assert.equal(never.value, 1, 'never counted: this process');
  });
});

describe('POST /v1/entitlements/check', () => {
  test('answers from the blocked state: refused with reset time and upgrade link, or allowed', async () => {
    const periodEnd = inAnHour();
    await setEntitlement({ customerId: ids.acme, meter: 'tokens', blocked: true, periodEnd });
    await until('the block arrived', () => two.entitlements.store.isBlocked(ids.acme, 'tokens'));
    try {
      const blocked = await check(two, { customer: 'acme', meter: 'tokens', quantity: '10' });
      assert.equal(blocked.status, 200);
      // Nothing published for these meters (setEntitlement alone): no usage, limit or thresholds to tell.
      const unknownQuota = {
        limit_state: null,
        usage: null,
        hard_limit: null,
        remaining: null,
        thresholds_notified: [],
        usage_as_of: null,
        spend_blocked: false,
        spend_runway: null,
        top_up_url: '/top-up',
      };
      assert.deepEqual(await blocked.json(), {
        customer: 'acme',
        meter: 'tokens',
        allowed: false,
        state: 'blocked',
        resets_at: periodEnd,
        upgrade_url: '/upgrade',
        ...unknownQuota,
      });
      const free = await check(two, { customer: 'acme', meter: 'api_calls' });
      assert.deepEqual(await free.json(), {
        customer: 'acme',
        meter: 'api_calls',
        allowed: true,
        state: 'not_blocked',
        resets_at: null,
        upgrade_url: '/upgrade',
        ...unknownQuota,
      });
      assert.equal((await json(await check(two, { customer: 'globex', meter: 'tokens' }))).allowed, true);
    } finally {
      await setEntitlement({ customerId: ids.acme, meter: 'tokens', blocked: false, periodEnd });
    }
  });

  test('customer-restricted keys see only their own customer; the scope is usage:read', async () => {
    const restricted = (await one.issue({ scopes: ['usage:read'], customer: 'globex' })).secret;
    const own = await check(one, { meter: 'tokens' }, restricted);
    assert.equal(own.status, 200);
    assert.equal((await json(own)).customer, 'globex');
    assert.equal((await check(one, { customer: 'globex', meter: 'tokens' }, restricted)).status, 200);
    const other = await check(one, { customer: 'acme', meter: 'tokens' }, restricted);
    // Another customer is answered exactly like one that does not exist.
    assert.equal(other.status, 404);
    const { detail: _otherDetail, instance: _otherInstance, ...otherProblem } = await json(other);
    const absent = await check(one, { customer: 'nobody', meter: 'tokens' }, restricted);
    const { detail: _absentDetail, instance: _absentInstance, ...absentProblem } = await json(absent);
    assert.deepEqual(otherProblem, absentProblem);

    const writeOnly = (await one.issue({ scopes: ['events:write'] })).secret;
    assert.equal((await check(one, { customer: 'acme', meter: 'tokens' }, writeOnly)).status, 403);
    assert.equal((await one.call('POST', '/v1/entitlements/check', undefined, { customer: 'acme', meter: 'tokens' })).status, 401);
  });

  test('bad requests are problems naming what is wrong', async () => {
    const cases: Array<[unknown, number, RegExp]> = [
      [{ meter: 'tokens' }, 400, /customer/],
      [{ customer: 'acme' }, 400, /meter/],
      [{ customer: 'acme', meter: 'tokens', quantity: '-1' }, 400, /quantity/],
      [{ customer: 'acme', meter: 'tokens', quantity: 5 }, 400, /quantity/],
      [{ customer: 'acme', meter: 'tokens', extra: true }, 400, /extra/],
      [{ customer: 'nobody', meter: 'tokens' }, 404, /nobody/],
      [{ customer: 'acme', meter: 'teleports' }, 404, /teleports/],
    ];
    for (const [body, status, mentions] of cases) {
      const res = await check(one, body);
      assert.equal(res.status, status, JSON.stringify(body));
      const problem = await json(res);
      assert.match(`${problem.detail} ${JSON.stringify(problem.errors ?? [])}`, mentions);
    }
  });

  test('is in the OpenAPI document', async () => {
    const doc = await json(await fetch(`${one.url}/openapi.json`));
    assert.ok(doc.paths['/v1/entitlements/check']?.post);
    assert.ok(doc.components.schemas.EntitlementAnswer);
  });
});

describe('database work per check', () => {
  test('in steady state an entitlement check, and the refusal of an event for a blocked meter, send no query at all', async () => {
    const periodEnd = inAnHour();
    await setEntitlement({ customerId: ids.acme, meter: 'tokens', blocked: true, periodEnd });
    await until('the block arrived', () => one.entitlements.store.isBlocked(ids.acme, 'tokens'));
    const restricted = (await one.issue({ scopes: ['usage:read'], customer: 'acme' })).secret;
    const bodies: Array<[unknown, string]> = [
      [{ customer: 'acme', meter: 'tokens' }, admin],
      [{ customer: 'globex', meter: 'api_calls', quantity: '2' }, admin],
      [{ meter: 'tokens' }, restricted],
    ];
    // Warm-up: keys verified and cached, customers and meters in the metering caches.
    for (const [body, key] of bodies) assert.equal((await check(one, body, key)).status, 200);
    assert.equal((await ingest(one, event('tokens'))).status, 429);

    const counter = countQueries();
    try {
      for (let i = 0; i < 100; i++) {
        for (const [body, key] of bodies) assert.equal((await check(one, body, key)).status, 200);
      }
      for (let i = 0; i < 20; i++) assert.equal((await ingest(one, event('tokens'))).status, 429);
    } finally {
      counter.restore();
    }
    assert.equal(counter.count, 0, `${counter.count} queries for 300 checks and 20 refused events`);
    await setEntitlement({ customerId: ids.acme, meter: 'tokens', blocked: false, periodEnd });
    await until('the block lifted', () => !one.entitlements.store.isBlocked(ids.acme, 'tokens'));
  });
});

describe('when the change feed is down', () => {
  test('blocks are kept while disconnected, and a change missed meanwhile is picked up by the reload on reconnect', async () => {
    const periodEnd = inAnHour();
    await setEntitlement({ customerId: ids.acme, meter: 'tokens', blocked: true, periodEnd });
    await until('both instances refuse', async () => (await refusesTokens(one)) && (await refusesTokens(two)));

    // Lift the block without a notification: only a reload can learn of it.
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await client.query('alter table entitlements disable trigger entitlements_notify_change');
      await client.query(`update entitlements set blocked = false, reason = null where customer_id = $1 and meter = 'tokens'`, [ids.acme]);
      await client.query('alter table entitlements enable trigger entitlements_notify_change');
      await client.query('commit');
    } finally {
      client.release();
    }
    assert.ok(await refusesTokens(one), 'still blocked: nobody told this process');

    // Kill both listeners' backends, as a Postgres restart or a network cut would.
    const killed = await db.pool.query(
      'select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1 and datname = current_database()',
      [ENTITLEMENT_LISTENER_APPLICATION_NAME],
    );
    assert.equal(killed.rowCount, 2);
    await until('the listener gone', () => !two.entitlements.live);
    assert.ok(two.entitlements.store.isBlocked(ids.acme, 'tokens'), 'the last known block holds while disconnected');

    await until('both listeners back', () => one.entitlements.live && two.entitlements.live);
    assert.ok(await acceptsTokens(one));
    assert.ok(await acceptsTokens(two));

    // And the new connections hear changes again.
    await setEntitlement({ customerId: ids.acme, meter: 'tokens', blocked: true, periodEnd: inAnHour() });
    await until('both instances refuse', async () => (await refusesTokens(one)) && (await refusesTokens(two)));
    await setEntitlement({ customerId: ids.acme, meter: 'tokens', blocked: false, periodEnd });
  });
});

describe('published quota state', () => {
  test('publishQuota reaches every API process: the check tells usage, limit, remaining and thresholds, without a query', async () => {
    const publish = createPublishQuota({ pool: db.pool });
    const periodEnd = inAnHour();
    const asOf = new Date().toISOString();
    const countedAt = new Date(Date.parse(asOf) - 50).toISOString();
    await publish({
      customerId: ids.globex,
      meter: 'api_calls',
      usage: '750',
      hardLimit: '1000',
      state: 'ok',
      notified: ['50%'],
      nextDecision: '800',
      periodEnd,
      asOf,
      countedAt,
    });
    // An older publish arriving late (an activity retry) does not overwrite the newer one.
    await publish({
      customerId: ids.globex,
      meter: 'api_calls',
      usage: '10',
      hardLimit: '1000',
      state: 'ok',
      notified: [],
      nextDecision: '500',
      periodEnd,
      asOf: new Date(Date.parse(asOf) - 1000).toISOString(),
    });
    for (const app of [one, two]) {
      await until(
        'the published quota arrived',
        async () => (await json(await check(app, { customer: 'globex', meter: 'api_calls' }))).usage === '750',
      );
      const answer = await json(await check(app, { customer: 'globex', meter: 'api_calls', quantity: '10' }));
      assert.deepEqual(
        {
          allowed: answer.allowed,
          limit_state: answer.limit_state,
          hard_limit: answer.hard_limit,
          remaining: answer.remaining,
          notified: answer.thresholds_notified,
          resets_at: answer.resets_at,
        },
        { allowed: true, limit_state: 'ok', hard_limit: '1000', remaining: '250', notified: ['50%'], resets_at: periodEnd },
      );
    }
    // The next decision point and the read's time travel with it (NOTIFY), and so they do in the snapshot a starting process loads.
    for (const app of [one, two]) {
      assert.equal(app.entitlements.store.quotaOf(ids.globex, 'api_calls')?.nextDecision, '800');
      assert.deepEqual(app.entitlements.store.quotaOf(ids.globex, 'api_calls')?.countedAt, new Date(countedAt));
    }
    const three = await startKeysApp(db);
    try {
      assert.deepEqual(three.entitlements.store.quotaOf(ids.globex, 'api_calls'), {
        usage: '750',
        hardLimit: '1000',
        state: 'ok',
        notified: ['50%'],
        nextDecision: '800',
        spendRunway: null,
        asOf: new Date(asOf),
        countedAt: new Date(countedAt),
        resetsAt: new Date(periodEnd),
      });
    } finally {
      await three.close();
    }
    await publish({
      customerId: ids.globex,
      meter: 'api_calls',
      usage: '2000',
      hardLimit: '1000',
      state: 'overage',
      notified: ['50%', '100%'],
      nextDecision: null,
      periodEnd,
      asOf: new Date(Date.parse(asOf) + 1000).toISOString(),
    });
    await until('nothing left to decide arrives as null', () => one.entitlements.store.quotaOf(ids.globex, 'api_calls')?.usage === '2000');
    assert.equal(one.entitlements.store.quotaOf(ids.globex, 'api_calls')?.nextDecision, null);
    await publish({
      customerId: ids.globex,
      meter: 'api_calls',
      usage: '750',
      hardLimit: '1000',
      state: 'ok',
      notified: ['50%'],
      nextDecision: '800',
      periodEnd,
      asOf: new Date(Date.parse(asOf) + 2000).toISOString(),
    });
    await until('the state is back', () => one.entitlements.store.quotaOf(ids.globex, 'api_calls')?.usage === '750');
    const queries = countQueries();
    try {
      await json(await check(one, { customer: 'globex', meter: 'api_calls' }));
    } finally {
      queries.restore();
    }
    assert.equal(queries.count, 0);
  });
});
