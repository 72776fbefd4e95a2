import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCustomer } from '../../src/customers/store';
import { defaultEventTimePolicy } from '../../src/domain/metering/event-time';
import { createMetering } from '../../src/metering/metering';
import { createMeter } from '../../src/meters/store';
import type { Pool } from '../../src/db/pool';
import { eventWriter } from '../support/principals';
import { migrateSteps, migrationsBefore, scratchDatabase, type ScratchDatabase } from '../support/migration-steps';

/*
 * migrations/0029_event_id_collate_c.sql, on a database whose default collation is ICU en-US:
 * before it, event ids sort by that locale (a before B); after it, byte by byte (B before a).
 * The rows and the key stay, and the ingest writer's staging path, which joins its temporary table
 * (event_id in the database's default collation) to usage_events on event_id, still tells
 * duplicates from conflicts: PostgreSQL compares a default-collation text with a "C" one in "C".
 */
let scratch: ScratchDatabase | undefined;
let url: string;
let pool: Pool;

const AT = '2026-03-15T11:00:00.000Z';
const NOW = new Date('2026-03-15T12:00:00.000Z');

// The tie-break of a `latest` meter, as src/metering/usage-query.ts and reconciliation write it.
const LATEST = `select (array_agg(e.value order by e.event_time desc, e.event_id desc))[1]::text as v from usage_events e`;
const latest = async () => (await pool.query<{ v: string }>(LATEST)).rows[0]!.v;
const idsInOrder = async () =>
  (await pool.query<{ event_id: string }>('select event_id from usage_events order by event_id')).rows.map((r) => r.event_id);
const ROWS = `select customer_short_id, event_id, meter_short_id, event_time, value::text, properties::text from usage_events order by event_id collate "C"`;
const EVENT_ID_COLLATIONS = `
  select distinct coalesce(c.collname, 'default') as collation
    from pg_attribute a left join pg_collation c on c.oid = a.attcollation and c.collname <> 'default'
   where a.attname = 'event_id' and a.attrelid in (select 'usage_events'::regclass union all select inhrelid from pg_inherits where inhparent = 'usage_events'::regclass)`;
const collations = async () => (await pool.query<{ collation: string }>(EVENT_ID_COLLATIONS)).rows.map((r) => r.collation);

before(async () => {
  scratch = await scratchDatabase('collation', 2, { icuLocale: 'en-US' });
  ({ url, pool } = scratch);
  await migrateSteps(url, 'up', migrationsBefore('0029'));
  await createMeter(
    pool,
    { code: 'storage', name: 'Storage', event_type: 'storage', aggregation: 'latest', value_property: 'gb', filter: {} },
    'system',
  );
  await createCustomer(pool, { external_id: 'acme', name: 'Acme', currency: 'USD' }, 'system');
  // Two events at the same microsecond: which is latest is the ids' order.
  await pool.query(
    `insert into usage_events (customer_short_id, event_id, meter_short_id, event_time, received_at, value, properties, timestamp_provided, late)
     select c.short_id, x.id, m.short_id, $1, $1, x.v, json_build_object('gb', x.v::text), true, false
       from customers c, meters m, (values ('a-1', 1), ('B-1', 2)) as x(id, v)`,
    [AT],
  );
});

after(() => scratch?.drop());

test('0029 makes event ids compare byte by byte whatever the database locale, and keeps rows, key and duplicate detection', async () => {
  assert.deepEqual(await collations(), ['default']);
  assert.deepEqual(await idsInOrder(), ['a-1', 'B-1']);
  assert.equal(await latest(), '2');
  const rows = (await pool.query(ROWS)).rows;

  await migrateSteps(url, 'up', 1);
  assert.deepEqual(await collations(), ['C']);
  assert.deepEqual(await idsInOrder(), ['B-1', 'a-1']);
  assert.equal(await latest(), '1');
  assert.deepEqual((await pool.query(ROWS)).rows, rows);
  await assert.rejects(
    pool.query(`insert into usage_events select * from usage_events where event_id = 'a-1'`),
    /duplicate key value violates unique constraint "usage_events_p\d+_pkey"/,
  );

  // A stored key sends the whole group down the staging path, which joins the stage on event_id.
  const { ingest } = createMetering({ pool, clock: { now: () => NOW }, timePolicy: defaultEventTimePolicy });
  const event = (id: string, gb: string) => ({ id, customer: 'acme', type: 'storage', timestamp: AT, properties: { gb } });
  const result = await ingest.ingest([event('a-1', '1'), event('B-1', '3'), event('c-1', '4')], eventWriter, false);
  assert.deepEqual(
    result.outcomes.map((o) => o.status),
    ['duplicate', 'conflict', 'accepted'],
  );

  await migrateSteps(url, 'down', 1);
  assert.deepEqual(await collations(), ['default']);
  assert.deepEqual(await idsInOrder(), ['a-1', 'B-1', 'c-1']);
});
