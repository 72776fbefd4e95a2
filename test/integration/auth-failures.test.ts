import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { generateKey } from '../../src/keys/format';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';

/*
 * Failed authentications are limited per client address (src/api/authenticate.ts): the whole
 * 127.0.0.0/8 is loopback, so each test speaks from its own address to the same server.
 */

const LIMIT = 5;
let db: TestDatabase;
let t: KeysTestApp;
let lookups = 0;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

/** GET /v1/keys/current from `address`, with `key` (or none). */
function call(address: string, key: string | undefined, headers: Record<string, string> = {}): Promise<Answer> {
  const { hostname, port } = new URL(t.url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: hostname,
        port,
        path: '/v1/keys/current',
        localAddress: address,
        agent: false,
        headers: { ...headers, ...(key ? { authorization: `Bearer ${key}` } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) as Record<string, unknown> }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const unknownKey = () => generateKey('test').secret;

before(async () => {
  db = await createTestDatabase();
  t = await startKeysApp(db, { authFailures: { limit: LIMIT, windowSeconds: 60 } });
  // Every key lookup is one query on the instance's pool: counting them counts what a caller made the database do.
  const query = t.pool.query.bind(t.pool);
  t.pool.query = ((...args: Parameters<typeof query>) => {
    if (typeof args[0] === 'string' && args[0].includes('from api_keys')) lookups++;
    return query(...args);
  }) as typeof t.pool.query;
});
after(async () => {
  await t?.close();
  await db?.drop();
});

describe('failed authentication is limited per client address', () => {
  test('after the limit an address gets 429 with Retry-After, before any lookup, whatever key it sends', async () => {
    const address = '127.0.0.2';
    const { secret: valid } = await t.issue({ scopes: ['usage:read'] });
    const before = lookups;
    for (let i = 0; i < LIMIT; i++) {
      const refused = await call(address, unknownKey());
      assert.equal(refused.status, 401);
      assert.equal(refused.headers['ratelimit-policy'], `"auth-failures";q=${LIMIT};w=60`);
      assert.match(String(refused.headers.ratelimit), new RegExp(`^"auth-failures";r=${LIMIT - 1 - i};t=\\d+$`));
    }
    assert.equal(lookups - before, LIMIT, 'one lookup per distinct unknown key');

    for (const key of [unknownKey(), unknownKey(), valid, 'not-a-key']) {
      const blocked = await call(address, key, { 'x-forwarded-for': '10.9.8.7' });
      assert.equal(blocked.status, 429);
      assert.match(String(blocked.headers['content-type']), /^application\/problem\+json/);
      assert.equal(blocked.body.type, '/problems/rate_limited');
      assert.equal(blocked.body.reason, 'auth_failures');
      const retryAfter = Number(blocked.headers['retry-after']);
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${String(blocked.headers['retry-after'])}`);
      assert.match(String(blocked.headers.ratelimit), /^"auth-failures";r=0;t=\d+$/);
    }
    const many = await Promise.all(Array.from({ length: 100 }, () => call(address, unknownKey())));
    assert.ok(many.every((a) => a.status === 429));
    assert.equal(lookups - before, LIMIT, 'a blocked address buys no lookup');

    assert.equal((await call('127.0.0.3', valid)).status, 200, 'another address is not affected');
  });

  test('many distinct unknown keys at once cannot buy more lookups than the limit', async () => {
    const before = lookups;
    const answers = await Promise.all(Array.from({ length: 60 }, () => call('127.0.0.4', unknownKey())));
    assert.equal(lookups - before, LIMIT);
    assert.equal(answers.filter((a) => a.status === 401).length, LIMIT);
    assert.equal(answers.filter((a) => a.status === 429).length, 60 - LIMIT);
  });

  test('valid keys, even first seen, and requests without a key use none of the allowance', async () => {
    const address = '127.0.0.5';
    const fresh = await Promise.all(Array.from({ length: 3 * LIMIT }, () => t.issue({ scopes: ['usage:read'] })));
    for (const { secret } of fresh) assert.equal((await call(address, secret)).status, 200);
    for (let i = 0; i < 3 * LIMIT; i++) {
      const missing = await call(address, undefined);
      assert.equal(missing.status, 401);
      assert.equal(missing.body.reason, 'missing_key');
    }
    const first = await call(address, unknownKey());
    assert.equal(first.status, 401);
    assert.match(String(first.headers.ratelimit), new RegExp(`^"auth-failures";r=${LIMIT - 1};t=\\d+$`));
  });
});
