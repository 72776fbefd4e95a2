import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { Pool } from '../../src/db/pool';
import { migrateSteps, migrationsBefore, scratchDatabase, type ScratchDatabase } from '../support/migration-steps';

/*
 * migrations/0027_compact_usage_events.sql on a populated table: every event keeps its customer,
 * meter and columns (its properties as the same JSON), the key still deduplicates, grants
 * survive, a reader's query by customer uuid touches one partition, and the down migration gives
 * back the uuid columns and jsonb.
 */
const role = `meterflow_reader_${randomBytes(4).toString('hex')}`;
let scratch: ScratchDatabase | undefined;
let url: string;
let pool: Pool;

const before27 = migrationsBefore('0027');
const migrateTo = (direction: 'up' | 'down', count: number) => migrateSteps(url, direction, count);

/** Every event by its customer's and meter's uuid, whichever columns the table has now; properties compared as jsonb. */
const rows = async (compact: boolean) =>
  (
    await pool.query(
      compact
        ? `select c.id as customer_id, e.event_id, m.id as meter_id, e.event_time, e.received_at, e.value::text, e.properties::jsonb,
                  e.timestamp_provided, e.late
             from usage_events e join customers c on c.short_id = e.customer_short_id join meters m on m.short_id = e.meter_short_id
            order by 1, 2`
        : `select customer_id, event_id, meter_id, event_time, received_at, value::text, properties, timestamp_provided, late
             from usage_events order by 1, 2`,
    )
  ).rows;
const columnType = async (column: string) =>
  (
    await pool.query<{ t: string | null }>(
      `select format_type(atttypid, atttypmod) as t from pg_attribute where attrelid = 'usage_events'::regclass and attname = $1 and not attisdropped`,
      [column],
    )
  ).rows[0]?.t ?? null;
const canRead = async () =>
  (await pool.query<{ ok: boolean }>(`select has_table_privilege($1, 'usage_events', 'SELECT') as ok`, [role])).rows[0]!.ok;

before(async () => {
  scratch = await scratchDatabase('compact', 4);
  ({ url, pool } = scratch);
  await migrateTo('up', before27);
  await pool.query(`create role ${pg.escapeIdentifier(role)}`);
  await pool.query(`grant select on usage_events to ${pg.escapeIdentifier(role)}`);
  await pool.query(`insert into meters (code, name, event_type, aggregation, value_property) values ('tokens', 'Tokens', 'tokens', 'sum', 'tokens'),
                                                                                           ('calls', 'Calls', 'calls', 'count', null)`);
  await pool.query(`insert into customers (external_id, name, currency) select 'c-' || g, 'C ' || g, 'USD' from generate_series(1, 40) g`);
  await pool.query(
    `insert into usage_events (customer_id, event_id, meter_id, event_time, received_at, value, properties, timestamp_provided, late)
     select c.id, 'e-' || g, m.id, '2026-01-01'::timestamptz + g * interval '1 minute', now(),
            case when m.aggregation = 'sum' then (g % 97) + 0.125 end,
            case when m.aggregation = 'sum' then jsonb_build_object('tokens', ((g % 97) + 0.125)::text, 'region', 'eu', 'big', 12345678901234567890123)
                 else '{"nested": {"ü": [1, null, true]}}'::jsonb end,
            g % 3 <> 0, g % 50 = 0
       from customers c cross join generate_series(1, 60) g join meters m on m.code = case when g % 2 = 0 then 'tokens' else 'calls' end`,
  );
});

after(() => scratch?.drop([role]));

test('0027 stores a populated usage_events by short ids and json, losing nothing, and back', async () => {
  const original = await rows(false);
  assert.equal(original.length, 40 * 60);

  await migrateTo('up', 1);
  assert.equal(await columnType('customer_short_id'), 'integer');
  assert.equal(await columnType('meter_short_id'), 'integer');
  assert.equal(await columnType('properties'), 'json');
  assert.equal(await columnType('customer_id'), null);
  assert.deepEqual(await rows(true), original);
  assert.ok(await canRead(), 'grants are carried over');
  const { rows: parts } = await pool.query<{ n: string }>(
    `select count(*)::text as n from pg_inherits where inhparent = 'usage_events'::regclass`,
  );
  assert.equal(parts[0]!.n, '16');

  // The key still deduplicates across all time.
  const [one] = original;
  await assert.rejects(
    pool.query(
      `insert into usage_events (customer_short_id, event_id, meter_short_id, event_time, received_at, value, properties, timestamp_provided, late)
       select c.short_id, $2, m.short_id, now(), now(), null, '{}', false, false from customers c, meters m where c.id = $1 and m.id = $3`,
      [one.customer_id, one.event_id, one.meter_id],
    ),
    (err: Error & { code?: string }) => err.code === '23505',
  );

  // A reader's query by customer uuid, as src/metering/usage-query.ts writes it, scans one partition through the index.
  await pool.query('set enable_seqscan = off');
  const plan = (
    await pool.query<{ 'QUERY PLAN': string }>(
      `explain (analyze, costs off, timing off, summary off)
       select sum(e.value) from usage_events e
        where e.customer_short_id = (select short_id from customers where id = $1)
          and e.meter_short_id = (select short_id from meters where id = $2) and e.event_time >= $3 and e.event_time < $4`,
      [one.customer_id, one.meter_id, '2026-01-01', '2026-02-01'],
    )
  ).rows.map((r) => r['QUERY PLAN']);
  const executed = plan.filter((line) => / on usage_events_p\d\d/.test(line) && !/never executed/.test(line));
  assert.equal(new Set(executed.map((line) => line.match(/ on (usage_events_p\d\d)/)![1])).size, 1, plan.join('\n'));
  assert.ok(
    executed.some((line) => /customer_short_id_meter_short_id_event_tim/.test(line)),
    plan.join('\n'),
  );
  await pool.query('reset enable_seqscan');

  await migrateTo('down', 1);
  assert.equal(await columnType('customer_id'), 'uuid');
  assert.equal(await columnType('properties'), 'jsonb');
  assert.equal(await columnType('customer_short_id'), null);
  assert.deepEqual(await rows(false), original);
  assert.ok(await canRead(), 'grants are carried back');

  await migrateTo('up', 1);
  assert.deepEqual(await rows(true), original);
});
