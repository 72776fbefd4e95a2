import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createCustomer } from '../../src/customers/store';
import { createMeter } from '../../src/meters/store';
import type { RepackSummary } from '../../src/retention/repack-indexes';
import { createTestDatabase, type TestDatabase } from '../support/database';

/*
 * `npx meterflow events repack-indexes` against a real PostgreSQL: the primary key, filled out of
 * key order as ingest fills it, comes out smaller; every index stays valid and deduplicating; an
 * invalid index an interrupted rebuild left behind is dropped; a second run changes nothing.
 */
let db: TestDatabase;
let dir: string;
const root = path.resolve(import.meta.dirname, '../..');

before(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(tmpdir(), 'meterflow-repack-'));
});
after(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

const repack = (): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      ['bin/meterflow.js', 'events', 'repack-indexes', '--json'],
      { cwd: root, env: { ...process.env, DATABASE_URL: db.url, DATA_DIR: dir } },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
    );
  });

const primaryKeyBytes = async () =>
  Number(
    (
      await db.pool.query<{ bytes: string }>(
        `select sum(pg_relation_size(relid))::text as bytes from pg_partition_tree('usage_events_pkey') where isleaf`,
      )
    ).rows[0]!.bytes,
  );

test('repacks the primary key, keeps every index valid and unique, drops a leftover of an interrupted rebuild, and can run again', async () => {
  const { meter } = await createMeter(
    db.pool,
    { code: 'calls', name: 'Calls', event_type: 'call', aggregation: 'count', filter: {} },
    'system',
  );
  const customers = await Promise.all(
    [0, 1, 2, 3].map(
      async (i) => (await createCustomer(db.pool, { external_id: `c${i}`, name: `C${i}`, currency: 'USD' }, 'system')).customer.id,
    ),
  );
  // Ids inserted in random order, as clients send them: the primary key's pages split in two.
  await db.pool.query(
    `insert into usage_events (customer_short_id, event_id, meter_short_id, event_time, received_at, value, properties, timestamp_provided, late)
     select c.short_id, 'evt-' || g, (select short_id from meters where id = $2::uuid), now(), now(), null, '{}', false, false
       from generate_series(1, 40000) g join customers c on c.id = ($1::uuid[])[1 + g % 4] order by random()`,
    [customers, meter.id],
  );
  // What a cancelled REINDEX CONCURRENTLY leaves: an invalid index named like its new copy.
  const partition = (
    await db.pool.query<{ name: string }>(
      `select tableoid::regclass::text as name from usage_events where customer_short_id = (select short_id from customers where id = $1::uuid) limit 1`,
      [customers[0]],
    )
  ).rows[0]!.name;
  const leftover = `${partition}_pkey_ccnew`;
  await assert.rejects(
    db.pool.query(`create unique index concurrently ${leftover} on ${partition} (meter_short_id)`),
    (err: { code?: string }) => err.code === '23505',
    'the build fails on duplicate meter ids and leaves its index invalid',
  );
  const before = await primaryKeyBytes();

  const run = await repack();
  assert.equal(run.code, 0, run.stderr);
  const summary = JSON.parse(run.stdout) as RepackSummary;
  assert.deepEqual(summary.leftovers_dropped, [leftover]);
  assert.equal(summary.indexes_rebuilt, 32, '16 partitions × (primary key, time index)');
  assert.ok(summary.bytes_after < summary.bytes_before, JSON.stringify(summary));
  const afterBytes = await primaryKeyBytes();
  assert.ok(afterBytes < before * 0.9, `primary key ${before} → ${afterBytes} bytes`);

  const { rows } = await db.pool.query<{ invalid: string }>(
    `select count(*)::text as invalid from pg_index i join pg_partition_tree('usage_events') t on t.relid = i.indrelid where not i.indisvalid`,
  );
  assert.equal(rows[0]!.invalid, '0');
  await assert.rejects(
    db.pool.query(
      `insert into usage_events (customer_short_id, event_id, meter_short_id, event_time, received_at, properties, timestamp_provided, late)
       values ((select short_id from customers where id = $1::uuid), 'evt-4', (select short_id from meters where id = $2::uuid), now(), now(), '{}', false, false)`,
      [customers[0], meter.id],
    ),
    (err: { code?: string }) => err.code === '23505',
    'the rebuilt primary key still deduplicates',
  );

  const again = await repack();
  assert.equal(again.code, 0, again.stderr);
  const second = JSON.parse(again.stdout) as RepackSummary;
  assert.deepEqual(second.leftovers_dropped, []);
  assert.ok(second.bytes_after <= second.bytes_before * 1.01, JSON.stringify(second));
});
