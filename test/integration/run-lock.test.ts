import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RunBusyError, withRunLock } from '../../src/db/run-lock';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { waitFor } from '../support/wait-for';

/* The lock that keeps maintenance jobs (events archive, events repack-indexes) to one run at a time. */
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db?.drop();
});

test('a second run is refused while the first holds the lock, and may run once it has finished or failed', async () => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const first = withRunLock(db.pool, 'test:job', 'busy', async () => {
    await held;
    return 'first';
  });
  await new Promise((r) => setTimeout(r, 50));
  await assert.rejects(
    withRunLock(db.pool, 'test:job', 'another run is in progress', async () => 'second'),
    (err: Error) => err instanceof RunBusyError && err.message === 'another run is in progress',
  );
  assert.equal(await withRunLock(db.pool, 'test:other-job', 'busy', async () => 'other'), 'other', 'another name is another lock');
  release();
  assert.equal(await first, 'first');
  await assert.rejects(
    withRunLock(db.pool, 'test:job', 'busy', async () => {
      throw new Error('the job failed');
    }),
    /the job failed/,
  );
  assert.equal(await withRunLock(db.pool, 'test:job', 'busy', async () => 'again'), 'again', 'a failed run lets the lock go');
});

test('a session the job marks broken is closed, and its lock goes with it', async () => {
  let pid = 0;
  await withRunLock(db.pool, 'test:broken', 'busy', async (client, markBroken) => {
    pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    markBroken();
  });
  // The backend exits once the closed socket reaches it.
  await waitFor(
    async () => (await db.pool.query<{ n: string }>('select count(*)::text as n from pg_stat_activity where pid = $1', [pid])).rows[0]!.n,
    { description: 'the connection closed, not pooled', until: (n) => n === '0' },
  );
  assert.equal(await withRunLock(db.pool, 'test:broken', 'busy', async () => 'free'), 'free');
});
