import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { Pool } from '../../src/db/pool';
import { migrateSteps, migrationsBefore, scratchDatabase, type ScratchDatabase } from '../support/migration-steps';

/*
 * migrations/0013_partition_usage_events.sql on a populated table: every row, the key, the index
 * and the grants survive the move into 16 hash partitions, and the down migration moves them back.
 */
const role = `meterflow_reader_${randomBytes(4).toString('hex')}`;
let scratch: ScratchDatabase | undefined;
let url: string;
let pool: Pool;

const before13 = migrationsBefore('0013');
const migrateTo = (direction: 'up' | 'down', count: number) => migrateSteps(url, direction, count);

const ROWS = `select customer_id, event_id, meter_id, event_time, received_at, value::text, properties, timestamp_provided, late
                from usage_events order by customer_id, event_id`;
const kind = async () =>
  (await pool.query<{ relkind: string }>(`select relkind from pg_class where oid = 'usage_events'::regclass`)).rows[0]!.relkind;
const constraints = async () =>
  (
    await pool.query<{ conname: string }>(
      `select conname from pg_constraint where conrelid = 'usage_events'::regclass and contype <> 'n' order by 1`,
    )
  ).rows.map((r) => r.conname);
const canRead = async () =>
  (await pool.query<{ ok: boolean }>(`select has_table_privilege($1, 'usage_events', 'SELECT') as ok`, [role])).rows[0]!.ok;

before(async () => {
  scratch = await scratchDatabase('partition', 4);
  ({ url, pool } = scratch);
  await migrateTo('up', before13);
  await pool.query(`create role ${pg.escapeIdentifier(role)}`);
  await pool.query(`grant select on usage_events to ${pg.escapeIdentifier(role)}`);
  await pool.query(`insert into meters (code, name, event_type, aggregation, value_property) values ('tokens', 'Tokens', 'tokens', 'sum', 'tokens'),
                                                                                           ('calls', 'Calls', 'calls', 'count', null)`);
  await pool.query(`insert into customers (external_id, name, currency) select 'c-' || g, 'C ' || g, 'USD' from generate_series(1, 40) g`);
  await pool.query(
    `insert into usage_events (customer_id, event_id, meter_id, event_time, received_at, value, properties, timestamp_provided, late)
     select c.id, 'e-' || g, m.id, '2026-01-01'::timestamptz + g * interval '1 minute', now(),
            case when m.aggregation = 'sum' then (g % 97) + 0.125 end,
            case when m.aggregation = 'sum' then jsonb_build_object('tokens', ((g % 97) + 0.125)::text, 'region', 'eu') else '{}'::jsonb end,
            g % 3 <> 0, g % 50 = 0
       from customers c cross join generate_series(1, 60) g join meters m on m.code = case when g % 2 = 0 then 'tokens' else 'calls' end`,
  );
});

after(() => scratch?.drop([role]));

test('0013 moves a populated usage_events into 16 hash partitions and back, losing nothing', async () => {
  const original = (await pool.query(ROWS)).rows;
  assert.equal(original.length, 40 * 60);
  assert.equal(await kind(), 'r');
  const named = await constraints();
  assert.deepEqual(named, ['usage_events_event_id_check', 'usage_events_pkey', 'usage_events_value_check']);

  await migrateTo('up', 1);
  assert.deepEqual(await constraints(), named);
  assert.equal(await kind(), 'p');
  const { rows: parts } = await pool.query<{ n: string }>(
    `select count(*)::text as n from pg_inherits where inhparent = 'usage_events'::regclass`,
  );
  assert.equal(parts[0]!.n, '16');
  assert.deepEqual((await pool.query(ROWS)).rows, original);
  assert.ok(await canRead(), 'grants are carried over');

  // The key still deduplicates: ON CONFLICT as the ingest writer uses it, and a plain duplicate insert.
  const [one] = original;
  const dup = await pool.query(
    `insert into usage_events (customer_id, event_id, meter_id, event_time, received_at, value, properties, timestamp_provided, late)
     values ($1, $2, $3, now(), now(), null, '{}', false, false) on conflict (customer_id, event_id) do nothing returning event_id`,
    [one.customer_id, one.event_id, one.meter_id],
  );
  assert.equal(dup.rowCount, 0);
  await assert.rejects(
    pool.query(
      `insert into usage_events (customer_id, event_id, meter_id, event_time, received_at, value, properties, timestamp_provided, late)
       values ($1, $2, $3, now(), now(), null, '{}', false, false)`,
      [one.customer_id, one.event_id, one.meter_id],
    ),
    (err: Error & { code?: string }) => err.code === '23505',
  );
  await assert.rejects(
    pool.query(
      `insert into usage_events (customer_id, event_id, meter_id, event_time, received_at, value, properties, timestamp_provided, late)
       values ($1, '', $2, now(), now(), -1, '{}', false, false)`,
      [one.customer_id, one.meter_id],
    ),
    (err: Error & { code?: string }) => err.code === '23514',
  );

  // A customer's range query reads one partition, through the (customer, meter, time) index.
  await pool.query('set enable_seqscan = off');
  const plan = (
    await pool.query<{ 'QUERY PLAN': string }>(
      `explain select sum(value) from usage_events where customer_id = $1 and meter_id = $2 and event_time >= $3 and event_time < $4`,
      [one.customer_id, one.meter_id, '2026-01-01', '2026-02-01'],
    )
  ).rows
    .map((r) => r['QUERY PLAN'])
    .join('\n');
  assert.equal(plan.match(/usage_events_p\d\d/g)?.length ? new Set(plan.match(/usage_events_p\d\d/g)).size : 0, 1, plan);
  assert.match(plan, /customer_id_meter_id_event_time_idx/, plan);

  await migrateTo('down', 1);
  assert.equal(await kind(), 'r');
  assert.deepEqual((await pool.query(ROWS)).rows, original);
  assert.ok(await canRead(), 'grants are carried back');
  assert.deepEqual(await constraints(), named);

  await migrateTo('up', 1);
  assert.equal(await kind(), 'p');
  assert.deepEqual((await pool.query(ROWS)).rows, original);
});
