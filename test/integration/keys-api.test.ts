import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateKey } from '../../src/keys/format';
import { createCustomer } from '../../src/customers/store';
import { createMeter } from '../../src/meters/store';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { ManualClock, startKeysApp, type KeysTestApp } from '../support/keys-app';

let db: TestDatabase;
let t: KeysTestApp;
let admin: string;
let adminId: string;
const clock = new ManualClock(new Date());

type Json = Record<string, unknown>;
const body = async (res: Response) => (await res.json()) as Json;

before(async () => {
  db = await createTestDatabase();
  // Its hot-path test sends one unknown key 50 times from one address: room for that many failures.
  t = await startKeysApp(db, { clock, authFailures: { limit: 1000, windowSeconds: 60 } });
  ({ secret: admin, id: adminId } = await t.issue({
    scopes: ['keys:admin', 'billing:admin', 'billing:read', 'usage:read', 'events:write'],
  }));
  for (const c of ['acme', 'globex']) await createCustomer(db.pool, { external_id: c, name: c, currency: 'USD' }, 'system');
  await createMeter(db.pool, { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} }, 'system');
});
after(async () => {
  await t?.close();
  await db?.drop();
});

async function refusal(res: Response): Promise<string> {
  assert.equal(res.status, 401);
  assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="meterflow"/);
  const problem = await body(res);
  assert.equal(problem.type, '/problems/unauthenticated');
  return problem.reason as string;
}

describe('authentication', () => {
  test('missing, malformed and bad-checksum keys are refused with their reason before any lookup', async () => {
    assert.equal(await refusal(await t.call('GET', '/v1/keys/current', undefined)), 'missing_key');
    assert.equal(await refusal(await t.call('GET', '/v1/keys/current', 'not-a-key')), 'malformed_key');
    const basic = await fetch(`${t.url}/v1/keys/current`, { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    assert.equal(await refusal(basic), 'malformed_key');
    const typo = admin.slice(0, 10) + (admin[10] === 'a' ? 'b' : 'a') + admin.slice(11);
    assert.equal(await refusal(await t.call('GET', '/v1/keys/current', typo)), 'bad_checksum');
  });

  test('unknown, revoked and expired keys get the same answer: nothing tells whether a key exists', async () => {
    const unknown = generateKey('test').secret;
    const revoked = await t.issue({ scopes: ['usage:read'] });
    await t.keys.service.revoke('cli', revoked.id);
    const expiring = await t.issue({ scopes: ['usage:read'], expiresAt: new Date(clock.now().getTime() + 60_000) });
    assert.equal((await t.call('GET', '/v1/keys/current', expiring.secret)).status, 200);
    clock.advance(60_000);
    const answers = [];
    for (const key of [unknown, revoked.secret, expiring.secret]) {
      const res = await t.call('GET', '/v1/keys/current', key);
      assert.equal(res.status, 401);
      const { instance: _instance, ...problem } = await body(res);
      answers.push(problem);
    }
    assert.deepEqual(answers[0], {
      type: '/problems/unauthenticated',
      title: 'Missing or invalid API key',
      status: 401,
      detail: 'The API key is not valid.',
      reason: 'invalid_key',
    });
    assert.deepEqual(answers[1], answers[0]);
    assert.deepEqual(answers[2], answers[0]);
  });

  test('X-API-Key works as well as Authorization: Bearer', async () => {
    const res = await fetch(`${t.url}/v1/keys/current`, { headers: { 'x-api-key': admin } });
    assert.equal(res.status, 200);
    assert.equal((await body(res)).id, adminId);
  });

  test("a key without the scope gets 403 naming it, on every chapter's routes", async () => {
    const { secret } = await t.issue({ scopes: ['usage:read'] });
    for (const [method, path] of [
      ['GET', '/v1/keys'],
      ['POST', '/v1/events'],
      ['POST', '/v1/customers'],
      ['GET', '/v1/meters'],
    ] as const) {
      const res = await t.call(method, path, secret, method === 'POST' ? {} : undefined);
      assert.equal(res.status, 403, `${method} ${path}`);
      assert.equal((await body(res)).type, '/problems/forbidden');
    }
  });

  test('the secret never reaches the log', async () => {
    await t.call('GET', '/v1/keys/current', admin);
    await fetch(`${t.url}/v1/keys/current`, { headers: { 'x-api-key': admin } });
    await t.call('POST', '/v1/keys', admin, { name: 'log check', scopes: ['usage:read'] });
    const log = t.logs.join('');
    assert.ok(log.includes('[redacted]'));
    assert.ok(!log.includes(admin.slice(8)), 'the key appears in the log');
    assert.ok(!/mf_(live|test)_[0-9A-Za-z]{10}/.test(log), 'a key-shaped string appears in the log');
  });
});

describe('customer-restricted keys', () => {
  test('a key for customer A can neither write nor read customer B', async () => {
    const { secret: a } = await t.issue({ scopes: ['events:write', 'usage:read', 'billing:read'], customer: 'acme' });
    const own = await t.call('POST', '/v1/events', a, { id: 'e1', type: 'api_call' });
    assert.equal(own.status, 201, JSON.stringify(await own.clone().json()));
    const explicitOwn = await t.call('POST', '/v1/events', a, { id: 'e2', customer: 'acme', type: 'api_call' });
    assert.equal(explicitOwn.status, 201);

    // Another customer is, to a restricted key, indistinguishable from one that does not exist.
    const write = await t.call('POST', '/v1/events', a, { id: 'e3', customer: 'globex', type: 'api_call' });
    assert.equal(write.status, 422, JSON.stringify(await write.clone().json()));
    assert.equal((await body(write)).reason, 'unknown_customer');
    const batch = await t.call('POST', '/v1/events', a, [{ id: 'e4', customer: 'globex', type: 'api_call' }]);
    assert.equal(batch.status, 422);

    const from = new Date(clock.now().getTime() - 86_400_000).toISOString();
    const to = new Date(clock.now().getTime() + 86_400_000).toISOString();
    const foreign = await t.call('GET', `/v1/usage?customer=globex&meter=api_calls&from=${from}&to=${to}`, a);
    assert.equal(foreign.status, 404, JSON.stringify(await foreign.clone().json()));
    assert.equal((await t.call('GET', '/v1/customers/globex', a)).status, 404);
    assert.equal((await t.call('GET', '/v1/customers', a)).status, 403);
    assert.equal((await t.call('GET', '/v1/customers/acme', a)).status, 200);
    const usage = await t.call('GET', `/v1/usage?meter=api_calls&from=${from}&to=${to}`, a);
    assert.equal(usage.status, 200);

    const { rows } = await db.pool.query(`select c.external_id from usage_events e join customers c on c.short_id = e.customer_short_id`);
    assert.deepEqual(
      rows.map((r: { external_id: string }) => r.external_id),
      ['acme', 'acme'],
    );
  });

  test("a customer-restricted admin manages only its customer's keys and cannot widen them", async () => {
    const { secret: acmeAdmin } = await t.issue({ scopes: ['keys:admin', 'usage:read'], customer: 'acme' });
    const other = await t.issue({ scopes: ['usage:read'], customer: 'globex' });
    const created = await t.call('POST', '/v1/keys', acmeAdmin, { name: 'acme reader', scopes: ['usage:read'] });
    assert.equal(created.status, 201);
    assert.equal((await body(created)).customer, 'acme');
    const foreign = await t.call('POST', '/v1/keys', acmeAdmin, { name: 'x', scopes: ['usage:read'], customer: 'globex' });
    assert.equal(foreign.status, 422);
    assert.equal((await body(foreign)).reason, 'unknown_customer');
    const widened = await t.call('POST', '/v1/keys', acmeAdmin, { name: 'x', scopes: ['usage:read'], customer: null });
    assert.equal(widened.status, 403);
    assert.equal((await body(widened)).reason, 'customer_escalation');
    assert.equal((await t.call('POST', '/v1/keys', acmeAdmin, { name: 'x', scopes: ['events:write'] })).status, 403);
    assert.equal((await t.call('GET', `/v1/keys/${other.id}`, acmeAdmin)).status, 404);
    assert.equal((await t.call('POST', `/v1/keys/${other.id}/revoke`, acmeAdmin)).status, 404);
    const list = (await body(await t.call('GET', '/v1/keys?limit=500', acmeAdmin))) as { data: Json[] };
    assert.ok(list.data.length >= 2 && list.data.every((k) => k.customer === 'acme'));
  });

  test('no key can grant scopes it lacks, nor rotate a key that has them', async () => {
    const { secret: keysOnly } = await t.issue({ scopes: ['keys:admin'] });
    const res = await t.call('POST', '/v1/keys', keysOnly, { name: 'x', scopes: ['billing:admin'] });
    assert.equal(res.status, 403);
    assert.equal((await body(res)).reason, 'scope_escalation');
    const powerful = await t.issue({ scopes: ['billing:admin'] });
    assert.equal((await t.call('POST', `/v1/keys/${powerful.id}/rotate`, keysOnly, {})).status, 403);
    assert.equal((await t.call('PATCH', `/v1/keys/${powerful.id}`, keysOnly, { scopes: ['billing:admin', 'events:write'] })).status, 403);
  });
});

describe('lifecycle API', () => {
  test('create shows the secret once; get and list never; the database holds only the HMAC', async () => {
    const res = await t.call('POST', '/v1/keys', admin, {
      name: 'ingest',
      environment: 'live',
      scopes: ['events:write', 'events:write'],
      rate_limit: { per_second: 5, burst: 10 },
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const created = await body(res);
    const secret = created.secret as string;
    assert.match(secret, /^mf_live_/);
    assert.equal(res.headers.get('location'), `/v1/keys/${created.id as string}`);
    assert.deepEqual(created.scopes, ['events:write']);
    assert.equal(created.start, secret.slice(0, 12));
    assert.equal(created.status, 'active');
    assert.equal(created.created_by, `key:${adminId}`);
    assert.deepEqual(created.rate_limit, { per_second: 5, burst: 10 });

    const got = await body(await t.call('GET', `/v1/keys/${created.id as string}`, admin));
    const { secret: _shownOnce, ...withoutSecret } = created;
    assert.deepEqual(got, withoutSecret);
    const listed = await t.call('GET', '/v1/keys?limit=500', admin);
    assert.ok(!(await listed.text()).includes(secret.slice(12)));

    const { rows } = await db.pool.query(`select to_jsonb(k)::text as row from api_keys k where id = $1`, [created.id]);
    assert.ok(!(rows[0] as { row: string }).row.includes(secret.slice(12)), 'the secret is stored');
    assert.equal((await t.call('GET', '/v1/keys/current', secret)).status, 200);
  });

  test('list pages oldest first with a cursor', async () => {
    const first = (await body(await t.call('GET', '/v1/keys?limit=2', admin))) as { data: Json[]; next_cursor: string };
    assert.equal(first.data.length, 2);
    const second = (await body(await t.call('GET', `/v1/keys?limit=2&after=${first.next_cursor}`, admin))) as { data: Json[] };
    const all = (await body(await t.call('GET', '/v1/keys?limit=500', admin))) as { data: Json[] };
    assert.deepEqual(
      [...first.data, ...second.data].map((k) => k.id),
      all.data.slice(0, 4).map((k) => k.id),
    );
    assert.equal((await t.call('GET', '/v1/keys?after=nope', admin)).status, 400);
    assert.equal((await t.call('GET', '/v1/keys/not-a-uuid', admin)).status, 400);
    assert.equal((await t.call('GET', '/v1/keys/00000000-0000-4000-8000-000000000000', admin)).status, 404);
  });

  test('invalid input is a 400 problem naming the field', async () => {
    for (const input of [
      {},
      { name: 'x', scopes: [] },
      { name: 'x', scopes: ['root'] },
      { name: 'x', scopes: ['usage:read'], environment: 'prod' },
      { name: 'x', scopes: ['usage:read'], expires_at: 'tomorrow' },
      { name: 'x', scopes: ['usage:read'], expires_at: '2001-01-01T00:00:00Z' },
      { name: 'x', scopes: ['usage:read'], rate_limit: { per_second: 0, burst: 1 } },
      { name: 'x', scopes: ['usage:read'], secret: 'mine' },
    ]) {
      const res = await t.call('POST', '/v1/keys', admin, input);
      assert.equal(res.status, 400, JSON.stringify(input));
      assert.equal((await body(res)).type, '/problems/validation_failed');
    }
    const unknownCustomer = await t.call('POST', '/v1/keys', admin, { name: 'x', scopes: ['usage:read'], customer: 'nobody' });
    assert.equal(unknownCustomer.status, 422);
  });

  test('revoke is immediate, idempotent and audited', async () => {
    const k = await t.issue({ scopes: ['usage:read'] });
    assert.equal((await t.call('GET', '/v1/keys/current', k.secret)).status, 200);
    const res = await t.call('POST', `/v1/keys/${k.id}/revoke`, admin);
    assert.equal(res.status, 200);
    assert.equal((await body(res)).status, 'revoked');
    assert.equal(await refusal(await t.call('GET', '/v1/keys/current', k.secret)), 'invalid_key');
    assert.equal((await t.call('POST', `/v1/keys/${k.id}/revoke`, admin)).status, 200);
    assert.equal((await t.call('PATCH', `/v1/keys/${k.id}`, admin, { name: 'back' })).status, 409);
    const { rows } = await db.pool.query(`select actor, action from audit_log where subject_id = $1 order by id`, [k.id]);
    assert.deepEqual(rows, [
      { actor: 'cli', action: 'api_key.created' },
      { actor: `key:${adminId}`, action: 'api_key.revoked' },
    ]);
  });

  test('rotate: a new secret with the same powers; the old key works until the grace deadline', async () => {
    const old = await t.issue({ scopes: ['usage:read', 'events:write'], customer: 'acme' });
    const res = await t.call('POST', `/v1/keys/${old.id}/rotate`, admin, { grace_seconds: 300 });
    assert.equal(res.status, 201);
    const rotated = (await body(res)) as Json & { previous: Json };
    assert.notEqual(rotated.secret, old.secret);
    assert.deepEqual(rotated.scopes, ['events:write', 'usage:read']);
    assert.equal(rotated.customer, 'acme');
    assert.equal(rotated.previous.replaced_by, rotated.id);
    assert.equal(rotated.previous.expires_at, new Date(clock.now().getTime() + 300_000).toISOString());
    assert.equal((await t.call('GET', '/v1/keys/current', old.secret)).status, 200);
    assert.equal((await t.call('GET', '/v1/keys/current', rotated.secret as string)).status, 200);
    assert.equal((await t.call('POST', `/v1/keys/${old.id}/rotate`, admin, {})).status, 409);

    clock.advance(300_000);
    assert.equal(await refusal(await t.call('GET', '/v1/keys/current', old.secret)), 'invalid_key');
    assert.equal((await t.call('GET', '/v1/keys/current', rotated.secret as string)).status, 200);

    const now = await t.call('POST', `/v1/keys/${rotated.id as string}/rotate`, admin, { grace_seconds: 0 });
    assert.equal(now.status, 201);
    assert.equal(await refusal(await t.call('GET', '/v1/keys/current', rotated.secret as string)), 'invalid_key');
    const { rows } = await db.pool.query(`select action, details from audit_log where subject_id = $1 order by id`, [old.id]);
    assert.deepEqual(
      rows.map((r: { action: string }) => r.action),
      ['api_key.created', 'api_key.rotated'],
    );
    assert.equal((rows[1] as { details: Json }).details.replaced_by, rotated.id);
  });

  test('patch: scope changes are audited on their own and apply at once', async () => {
    const k = await t.issue({ scopes: ['usage:read'] });
    assert.equal((await t.call('GET', '/v1/keys', k.secret)).status, 403);
    const res = await t.call('PATCH', `/v1/keys/${k.id}`, admin, {
      scopes: ['keys:admin', 'usage:read'],
      name: 'promoted',
      expires_at: null,
    });
    assert.equal(res.status, 200);
    assert.deepEqual((await body(res)).scopes, ['keys:admin', 'usage:read']);
    assert.equal((await t.call('GET', '/v1/keys', k.secret)).status, 200);
    const { rows } = await db.pool.query(`select actor, action, details from audit_log where subject_id = $1 order by id`, [k.id]);
    assert.deepEqual(rows.slice(1), [
      { actor: `key:${adminId}`, action: 'api_key.scopes_changed', details: { from: ['usage:read'], to: ['keys:admin', 'usage:read'] } },
      { actor: `key:${adminId}`, action: 'api_key.updated', details: { changes: { name: { from: 'test', to: 'promoted' } } } },
    ]);
    const unchanged = await t.call('PATCH', `/v1/keys/${k.id}`, admin, { name: 'promoted' });
    assert.equal(unchanged.status, 200);
    assert.equal((await db.pool.query(`select 1 from audit_log where subject_id = $1`, [k.id])).rowCount, 3);
  });

  test('expiry can be set and moved while a key is active', async () => {
    const k = await t.issue({ scopes: ['usage:read'] });
    const at = new Date(clock.now().getTime() + 10_000);
    assert.equal((await t.call('PATCH', `/v1/keys/${k.id}`, admin, { expires_at: at.toISOString() })).status, 200);
    assert.equal((await t.call('GET', '/v1/keys/current', k.secret)).status, 200);
    clock.advance(10_000);
    assert.equal((await t.call('GET', '/v1/keys/current', k.secret)).status, 401);
    assert.equal((await body(await t.call('GET', `/v1/keys/${k.id}`, admin))).status, 'expired');
    assert.equal((await t.call('PATCH', `/v1/keys/${k.id}`, admin, { expires_at: null })).status, 409);
  });

  test('the audit log is append-only, and a failed change leaves no entry', async () => {
    await assert.rejects(db.pool.query(`update audit_log set actor = 'someone else'`), /append-only/);
    await assert.rejects(db.pool.query(`delete from audit_log`), /append-only/);
    await assert.rejects(db.pool.query(`truncate audit_log`), /append-only/);
    const before = (await db.pool.query(`select count(*)::int as n from audit_log`)).rows[0] as { n: number };
    const refused = await t.keys.service.create('cli', { name: 'x', environment: 'test', scopes: ['usage:read'], customer: 'nobody' });
    assert.equal(refused.ok ? 'issued' : refused.reason, 'unknown_customer');
    const afterCount = (await db.pool.query(`select count(*)::int as n from audit_log`)).rows[0] as { n: number };
    assert.equal(afterCount.n, before.n);
  });
});

describe('rate limits', () => {
  test('over the limit: 429 with Retry-After and the IETF RateLimit headers', async () => {
    const { secret } = await t.issue({ scopes: ['usage:read'], ratePerSecond: 2, burst: 1 });
    const statuses = [];
    let last: Response | undefined;
    for (let i = 0; i < 4; i++) {
      last = await t.call('GET', '/v1/keys/current', secret);
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.equal(last!.headers.get('retry-after'), '1');
    assert.equal(last!.headers.get('ratelimit-policy'), '"per-second";q=2;w=1, "burst";q=1;w=10');
    assert.match(last!.headers.get('ratelimit') ?? '', /^"per-second";r=0;t=1, "burst";r=0;t=\d+$/);
    const problem = await body(last!);
    assert.equal(problem.type, '/problems/rate_limited');
    assert.equal(problem.retry_after, 1);
  });

  test('every authenticated response tells the remaining budget', async () => {
    const { secret } = await t.issue({ scopes: ['usage:read'], ratePerSecond: 50, burst: 0 });
    const res = await t.call('GET', '/v1/keys/current', secret);
    assert.equal(res.headers.get('ratelimit-policy'), '"per-second";q=50;w=1');
    assert.match(res.headers.get('ratelimit') ?? '', /^"per-second";r=49;t=1$/);
  });
});

describe('hot path', () => {
  test('once a key is cached, authenticated requests make no database query', async () => {
    const { secret } = await t.issue({ scopes: ['usage:read'] });
    await t.call('GET', '/v1/keys/current', secret);
    const unknown = generateKey('live').secret;
    await t.call('GET', '/v1/keys/current', unknown);
    let queries = 0;
    const original = t.pool.query.bind(t.pool);
    t.pool.query = ((...args: Parameters<typeof original>) => {
      queries++;
      return original(...args);
    }) as typeof t.pool.query;
    const connect = t.pool.connect.bind(t.pool);
    t.pool.connect = ((...args: Parameters<typeof connect>) => {
      queries++;
      return connect(...args);
    }) as typeof t.pool.connect;
    try {
      for (let i = 0; i < 50; i++) {
        assert.equal((await t.call('GET', '/v1/keys/current', secret)).status, 200);
        assert.equal((await t.call('GET', '/v1/keys/current', unknown)).status, 401);
      }
    } finally {
      t.pool.query = original as typeof t.pool.query;
      t.pool.connect = connect as typeof t.pool.connect;
    }
    assert.equal(queries, 0);
  });

  test('concurrent first requests with the same key share one lookup', async () => {
    const { secret } = await t.issue({ scopes: ['usage:read'] });
    const lookups: string[] = [];
    const original = t.pool.query.bind(t.pool);
    t.pool.query = ((text: unknown, ...rest: unknown[]) => {
      if (typeof text === 'string' && text.includes('key_hash = any')) lookups.push(text);
      return (original as (...a: unknown[]) => unknown)(text, ...rest);
    }) as typeof t.pool.query;
    try {
      const results = await Promise.all(Array.from({ length: 20 }, () => t.keys.verifier.verify(secret)));
      assert.ok(results.every((r) => r.ok));
    } finally {
      t.pool.query = original as typeof t.pool.query;
    }
    assert.equal(lookups.length, 1);
  });
});
