import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Pool } from '../../src/db/pool';
import { migrateSteps, migrationsBefore, scratchDatabase, type ScratchDatabase } from '../support/migration-steps';

/*
 * migrations/0028_counters_count_and_sum.sql: the daily counters keep their counts and sums; the
 * down migration brings back max and latest, recomputed from the stored events.
 * migrations/0030_counters_fillfactor.sql: the counters' pages keep half their room for updates.
 */
let scratch: ScratchDatabase | undefined;
let url: string;
let pool: Pool;

const COUNTERS = `select c.customer_id, c.meter_id, c.day::text, c.event_count::text, c.value_sum::text from usage_counters c order by 1, 2, 3`;
const LATEST = `select c.customer_id, c.meter_id, c.day::text, c.value_max::text, c.latest_value::text, c.latest_time, c.latest_event_id
                  from usage_counters c order by 1, 2, 3`;

before(async () => {
  scratch = await scratchDatabase('counters', 2);
  ({ url, pool } = scratch);
  await migrateSteps(url, 'up', migrationsBefore('0028'));
  await pool.query(`insert into meters (code, name, event_type, aggregation, value_property) values ('gb', 'GB', 'gb', 'max', 'gb')`);
  await pool.query(`insert into customers (external_id, name, currency) select 'c-' || g, 'C ' || g, 'USD' from generate_series(1, 3) g`);
  // Two days per customer; on the second, two events share the latest time and the greater id wins.
  await pool.query(
    `insert into usage_events (customer_short_id, event_id, meter_short_id, event_time, received_at, value, properties, timestamp_provided, late)
     select c.short_id, 'e-' || g, m.short_id, '2026-01-01'::timestamptz + least(g, 30) * interval '1 hour', now(), (g * 7) % 11, '{}', true, false
       from customers c cross join generate_series(1, 31) g cross join meters m`,
  );
  await pool.query(
    `insert into usage_counters (customer_id, meter_id, day, event_count, value_sum, value_max, latest_value, latest_time, latest_event_id)
     select c.id, m.id, (e.event_time at time zone 'UTC')::date, count(*), sum(e.value), max(e.value),
            (array_agg(e.value order by e.event_time desc, e.event_id desc))[1], max(e.event_time),
            (array_agg(e.event_id order by e.event_time desc, e.event_id desc))[1]
       from usage_events e join customers c on c.short_id = e.customer_short_id join meters m on m.short_id = e.meter_short_id
      group by 1, 2, 3`,
  );
});

after(() => scratch?.drop());

test('0028 keeps counts and sums; its down migration recomputes max and latest from the events', async () => {
  const counts = (await pool.query(COUNTERS)).rows;
  const latest = (await pool.query(LATEST)).rows;
  assert.equal(counts.length, 6);
  assert.ok(latest.every((r: { latest_event_id: string }) => r.latest_event_id !== null));

  await migrateSteps(url, 'up', 1);
  assert.deepEqual((await pool.query(COUNTERS)).rows, counts);
  await assert.rejects(pool.query(LATEST), /column c.value_max does not exist/);

  await migrateSteps(url, 'down', 1);
  assert.deepEqual((await pool.query(COUNTERS)).rows, counts);
  assert.deepEqual((await pool.query(LATEST)).rows, latest);
});

const FILLFACTOR = `select coalesce(array_to_string(reloptions, ','), '') as options from pg_class where oid = 'usage_counters'::regclass`;

test('0030 leaves half of each new counters page to updates, and its down migration gives the default back', async () => {
  await migrateSteps(url, 'up', migrationsBefore('0030') - migrationsBefore('0028'));
  assert.equal((await pool.query<{ options: string }>(FILLFACTOR)).rows[0]!.options, '');
  const counters = (await pool.query(COUNTERS)).rows;
  await migrateSteps(url, 'up', 1);
  assert.equal((await pool.query<{ options: string }>(FILLFACTOR)).rows[0]!.options, 'fillfactor=50');
  assert.deepEqual((await pool.query(COUNTERS)).rows, counters);
  await migrateSteps(url, 'down', 1);
  assert.equal((await pool.query<{ options: string }>(FILLFACTOR)).rows[0]!.options, '');
});
