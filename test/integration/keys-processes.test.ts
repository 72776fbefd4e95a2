import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startApiProcess, type ApiProcess } from '../support/api-process';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';
import { waitFor } from '../support/wait-for';

/** Two API server processes (separate OS processes) sharing one Postgres, as behind a load balancer. */
let db: TestDatabase;
let issuer: KeysTestApp;
let a: ApiProcess;
let b: ApiProcess;

before(async () => {
  db = await createTestDatabase();
  issuer = await startKeysApp(db);
  [a, b] = await Promise.all([startApiProcess(db.url), startApiProcess(db.url)]);
});
after(async () => {
  await Promise.all([a?.stop(), b?.stop(), issuer?.close()]);
  await db?.drop();
});

const status = async (p: ApiProcess, key: string) =>
  (await fetch(`${p.url}/v1/keys/current`, { headers: { authorization: `Bearer ${key}` } })).status;

test('a key revoked through one API process is refused by another process, without waiting for its cache to expire', async () => {
  assert.notEqual(a.pid, b.pid);
  const { secret: admin } = await issuer.issue({ scopes: ['keys:admin', 'usage:read'] });
  const victim = await issuer.issue({ scopes: ['usage:read'] });
  assert.equal(await status(a, victim.secret), 200);
  assert.equal(await status(b, victim.secret), 200);

  const revoked = await fetch(`${a.url}/v1/keys/${victim.id}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${admin}` } });
  assert.equal(revoked.status, 200);
  // The processes cache keys for 60 s, longer than waitFor's deadline: only the notification gets there in time.
  const started = performance.now();
  await waitFor(() => status(b, victim.secret), { description: 'process b refuses the revoked key', until: (s) => s === 401 });
  console.log(`revocation reached the other process in ${(performance.now() - started).toFixed(0)} ms`);
  assert.equal(await status(a, victim.secret), 401);
});
