import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';
import { waitFor } from '../support/wait-for';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const pepper = `1:${'test-pepper-'.repeat(3)}`;

let db: TestDatabase;
let app: KeysTestApp;
let dataDir: string;

/** The real CLI, as `npm run cli -- …` runs it, in its own process. */
const cli = (...args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: db.url, API_KEY_PEPPERS: pepper, DATA_DIR: dataDir },
  });

before(async () => {
  db = await createTestDatabase();
  app = await startKeysApp(db);
  dataDir = mkdtempSync(path.join(tmpdir(), 'cli-'));
});
after(async () => {
  await app?.close();
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('admin CLI', () => {
  test('keys create bootstraps the first admin key: printed once, usable at once, audited as cli', async () => {
    assert.equal(await app.keys.service.hasUsableAdminKey(), false);
    const { stdout } = await cli('keys', 'create', '--name', 'bootstrap', '--scopes', 'keys:admin,billing:admin', '--env', 'test');
    const secret = stdout.trim().split('\n').at(-1)!;
    assert.match(secret, /^mf_test_[0-9A-Za-z]{32}$/);
    assert.equal(await app.keys.service.hasUsableAdminKey(), true);

    const created = await app.call('POST', '/v1/keys', secret, { name: 'from the API', scopes: ['billing:admin'] });
    assert.equal(created.status, 201);
    const { rows } = await db.pool.query(`select actor, action from audit_log order by id`);
    assert.deepEqual(rows[0], { actor: 'cli', action: 'api_key.created' });

    const listed = await cli('keys', 'list');
    assert.equal(listed.stdout.trim().split('\n').length, 2);
    assert.ok(!listed.stdout.includes(secret.slice(12)));
  });

  test('keys revoke stops the key in the running API, without waiting for its cache to expire', async () => {
    const { stdout } = await cli('keys', 'create', '--name', 'doomed', '--scopes', 'usage:read');
    const [summary, , secret] = stdout.trim().split('\n').slice(-3);
    const id = summary!.split(' ')[0]!;
    assert.equal((await app.call('GET', '/v1/keys/current', secret)).status, 200);
    await cli('keys', 'revoke', id);
    // The app caches keys for 60 s, longer than waitFor's deadline: only the notification gets there in time.
    await waitFor(async () => (await app.call('GET', '/v1/keys/current', secret)).status, {
      description: 'the revoked key refused',
      until: (s) => s === 401,
    });
  });

  test('keys rotate prints the successor once; both work during the grace period; a second rotation is refused with exit 1', async () => {
    const { stdout } = await cli('keys', 'create', '--name', 'rotating', '--scopes', 'usage:read', '--json');
    const created = JSON.parse(stdout) as { id: string; secret: string };
    const rotated = JSON.parse((await cli('keys', 'rotate', created.id, '--grace-seconds', '3600', '--json')).stdout) as {
      id: string;
      secret: string;
      previous: { id: string; replaced_by: string; expires_at: string };
    };
    assert.notEqual(rotated.id, created.id);
    assert.equal(rotated.previous.replaced_by, rotated.id);
    assert.ok(Date.parse(rotated.previous.expires_at) > Date.now() + 3_500_000);
    for (const secret of [created.secret, rotated.secret]) assert.equal((await app.call('GET', '/v1/keys/current', secret)).status, 200);
    await assert.rejects(
      cli('keys', 'rotate', created.id),
      (err: { code: number; stderr: string }) => err.code === 1 && /already rotated/.test(err.stderr),
    );
    const { rows } = await db.pool.query(
      `select count(*)::int as n from audit_log where action = 'api_key.rotated' and subject_id = $1 and actor = 'cli'`,
      [created.id],
    );
    assert.equal(rows[0].n, 1);
  });

  test('bad options are refused with a message, and nothing is created', async () => {
    const before = (await db.pool.query('select count(*)::int as n from api_keys')).rows[0] as { n: number };
    await assert.rejects(cli('keys', 'create', '--name', 'x', '--scopes', 'root'), (err: { stderr: string }) =>
      /--scopes/.test(err.stderr),
    );
    await assert.rejects(
      cli('keys', 'create', '--name', 'x', '--scopes', 'usage:read', '--customer', 'nobody'),
      (err: { stderr: string }) => /no customer "nobody"/.test(err.stderr),
    );
    await assert.rejects(cli('keys', 'revoke', 'nope'), (err: { stderr: string }) => /not a key id/.test(err.stderr));
    const afterCount = (await db.pool.query('select count(*)::int as n from api_keys')).rows[0] as { n: number };
    assert.equal(afterCount.n, before.n);
  });
});
