import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LISTENER_APPLICATION_NAME } from '../../src/keys/invalidation-listener';
import { parsePeppers } from '../../src/keys/pepper';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';
import { waitFor } from '../support/wait-for';

/**
 * Two API instances, each with its own pool and its own LISTEN connection, on one database:
 * what two API processes behind a load balancer share. (In one Node process, to keep the test
 * fast; nothing but Postgres connects them.)
 */
let db: TestDatabase;
let one: KeysTestApp;
let two: KeysTestApp;

before(async () => {
  db = await createTestDatabase();
  [one, two] = await Promise.all([startKeysApp(db), startKeysApp(db)]);
});
after(async () => {
  await Promise.all([one?.close(), two?.close()]);
  await db?.drop();
});

const status = async (app: KeysTestApp, key: string) => (await app.call('GET', '/v1/keys/current', key)).status;

/**
 * The apps cache keys for 60 s, longer than waitFor's deadline: a change seen in time was heard
 * through LISTEN/NOTIFY, not picked up when the cached entry expired.
 */
const refused = (app: KeysTestApp, key: string) =>
  waitFor(() => status(app, key), { description: 'the key refused', until: (s) => s === 401 });

describe('revocation across API processes', () => {
  test('a key revoked through one instance is refused by the other, without waiting for the cache to expire', async () => {
    const { secret: admin } = await one.issue({ scopes: ['keys:admin', 'usage:read'] });
    const victim = await one.issue({ scopes: ['usage:read'] });
    // Both instances have verified, and cached, the key.
    assert.equal(await status(one, victim.secret), 200);
    assert.equal(await status(two, victim.secret), 200);
    assert.equal(two.keys.cache.size.known >= 1, true);

    assert.equal((await one.call('POST', `/v1/keys/${victim.id}/revoke`, admin)).status, 200);
    await refused(two, victim.secret);
    assert.equal(await status(one, victim.secret), 401);
  });

  test('a scope change made through one instance applies on the other, without waiting for the cache to expire', async () => {
    const { secret: admin } = await two.issue({ scopes: ['keys:admin', 'usage:read'] });
    const k = await two.issue({ scopes: ['usage:read'] });
    assert.equal((await one.call('GET', '/v1/keys', k.secret)).status, 403);
    assert.equal((await two.call('PATCH', `/v1/keys/${k.id}`, admin, { scopes: ['keys:admin'] })).status, 200);
    await waitFor(async () => (await one.call('GET', '/v1/keys', k.secret)).status, {
      description: 'the new scope applied',
      until: (s) => s === 200,
    });
  });

  test('a change made outside the API (an operator in psql) reaches every instance too', async () => {
    const k = await one.issue({ scopes: ['usage:read'] });
    assert.equal(await status(one, k.secret), 200);
    assert.equal(await status(two, k.secret), 200);
    await db.pool.query('update api_keys set revoked_at = now() where id = $1', [k.id]);
    await refused(one, k.secret);
    await refused(two, k.secret);
  });
});

describe('when notifications cannot be trusted', () => {
  test('a lost listener connection empties and disables the cache until it is back, then caching resumes', async () => {
    const k = await one.issue({ scopes: ['usage:read'] });
    assert.equal(await status(two, k.secret), 200);
    assert.ok(two.keys.cache.live);
    // Kill every listener's backend, as a Postgres restart or a network cut would.
    const killed = await db.pool.query(
      'select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1 and datname = current_database()',
      [LISTENER_APPLICATION_NAME],
    );
    assert.equal(killed.rowCount, 2);
    await waitFor(() => !two.keys.cache.live, { description: 'the cache disabled' });
    assert.deepEqual(two.keys.cache.size, { known: 0, unknown: 0 });
    // Meanwhile requests still work, straight from the database: revocations are never missed.
    assert.equal(await status(two, k.secret), 200);
    await waitFor(() => two.keys.cache.live && one.keys.cache.live, { description: 'both listeners back' });
    assert.equal(await status(two, k.secret), 200);
    assert.equal(two.keys.cache.size.known, 1);
    // And the new connection hears changes again.
    await one.keys.service.revoke('cli', k.id);
    await refused(two, k.secret);
  });

  test('the TTL backstop bounds staleness when a notification is lost', async () => {
    const short = await startKeysApp(db, { ttlSeconds: 1 });
    try {
      const k = await short.issue({ scopes: ['usage:read'] });
      assert.equal(await status(short, k.secret), 200);
      // Lose the notification: the change is made with the notifying trigger disabled.
      const client = await db.pool.connect();
      try {
        await client.query('begin');
        await client.query('alter table api_keys disable trigger api_keys_notify_change');
        await client.query('update api_keys set revoked_at = now() where id = $1', [k.id]);
        await client.query('alter table api_keys enable trigger api_keys_notify_change');
        await client.query('commit');
      } finally {
        client.release();
      }
      assert.equal(await status(short, k.secret), 200, 'still cached: nobody told this process');
      await refused(short, k.secret);
    } finally {
      await short.close();
    }
  });
});

describe('pepper rotation', () => {
  const v1 = `1:${'first-pepper-'.repeat(3)}`;
  const v2 = `2:${'second-pepper-'.repeat(3)}`;

  test('keys hashed under the old pepper keep working, move to the new one on use, and the old one can then be retired', async () => {
    const before = await startKeysApp(db, { peppers: parsePeppers(v1) });
    const k = await before.issue({ scopes: ['usage:read'] });
    await before.close();

    const during = await startKeysApp(db, { peppers: parsePeppers(`${v2},${v1}`) });
    try {
      assert.equal(await status(during, k.secret), 200);
      const { rows } = await db.pool.query('select pepper_version from api_keys where id = $1', [k.id]);
      assert.deepEqual(rows, [{ pepper_version: 2 }]);
      const fresh = await during.issue({ scopes: ['usage:read'] });
      assert.deepEqual((await db.pool.query('select pepper_version from api_keys where id = $1', [fresh.id])).rows, [
        { pepper_version: 2 },
      ]);
    } finally {
      await during.close();
    }

    const retired = await startKeysApp(db, { peppers: parsePeppers(v2) });
    try {
      assert.equal(await status(retired, k.secret), 200);
    } finally {
      await retired.close();
    }
  });
});
