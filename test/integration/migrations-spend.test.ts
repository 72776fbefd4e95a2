import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { migrationsDir } from '../../src/db/migrate';
import type { Pool } from '../../src/db/pool';
import { migrateSteps, scratchDatabase, type ScratchDatabase } from '../support/migration-steps';

/*
 * migrations/0021_spend_limits.sql down and up again on a database holding what it adds: a spend
 * cap, a spend block and a spend-threshold notice. Down removes them and restores the previous
 * constraints; up brings the columns back empty.
 */
let scratch: ScratchDatabase | undefined;
let url: string;
let pool: Pool;

const files = readdirSync(migrationsDir)
  .filter((f) => f.endsWith('.sql'))
  .sort();
const all = files.length;
/** 0021 and every migration after it: down to just before 0021, then up again to the latest. */
const from0021 = all - files.indexOf('0021_spend_limits.sql');
const migrate = (direction: 'up' | 'down', count: number) => migrateSteps(url, direction, count);
const columns = async (table: string) =>
  (await pool.query<{ column_name: string }>(`select column_name from information_schema.columns where table_name = $1`, [table])).rows.map(
    (r) => r.column_name,
  );

before(async () => {
  scratch = await scratchDatabase('spend', 2);
  ({ url, pool } = scratch);
  await migrate('up', all);
});
after(() => scratch?.drop());

test('0021 goes down with spend caps, spend blocks and spend notices in place, and up again', async () => {
  const { rows } = await pool.query<{ customer: string; subscription: string }>(
    `with c as (insert into customers (external_id, name, currency) values ('acme', 'Acme', 'USD') returning id),
          m as (insert into meters (code, name, event_type, aggregation) values ('calls', 'Calls', 'call', 'count') returning code),
          p as (insert into plans (code, name, currency, charges, billing_interval)
                values ('basic', 'Basic', 'USD', '[]', '{"kind": "calendar_month"}') returning code)
     insert into subscriptions (customer_id, plan_code, anchor, spend_cap)
     select c.id, p.code, now(), '{"amount": "5.00"}' from c, p, m returning customer_id as customer, id as subscription`,
  );
  const { customer, subscription } = rows[0]!;
  await pool.query(
    `insert into entitlements (customer_id, meter, blocked, spend_blocked, spend_runway, resets_at, updated_at)
     values ($1, 'calls', false, true, 500, now() + interval '1 day', now())`,
    [customer],
  );
  await pool.query(
    `insert into notifications (id, kind, subscription_id, period_start, threshold, payload, created_at)
     values ($1, 'spend_threshold_crossed', $2, now(), '80%', '{}', now())`,
    [randomUUID(), subscription],
  );

  await migrate('down', from0021);
  assert.ok(!(await columns('subscriptions')).includes('spend_cap'));
  assert.ok(!(await columns('entitlements')).includes('spend_blocked'));
  assert.ok(!(await columns('entitlements')).includes('usage_counted_at'), '0022 went down first');
  assert.equal((await pool.query(`select count(*)::int as n from notifications`)).rows[0].n, 0);
  await assert.rejects(
    pool.query(
      `insert into notifications (id, kind, subscription_id, period_start, threshold, payload, created_at)
       values ($1, 'spend_threshold_crossed', $2, now(), '80%', '{}', now())`,
      [randomUUID(), subscription],
    ),
    /notifications_kind_check/,
  );

  await migrate('up', from0021);
  assert.equal((await pool.query(`select spend_cap from subscriptions`)).rows[0].spend_cap, null);
  assert.deepEqual((await pool.query(`select spend_blocked, spend_runway, usage_counted_at from entitlements`)).rows, [
    { spend_blocked: false, spend_runway: null, usage_counted_at: null },
  ]);
});
