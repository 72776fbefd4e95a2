import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { migrate } from '../../src/db/migrate';
import { createTestDatabase, type TestDatabase } from '../support/database';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db?.drop();
});

test('every migration is applied to the test database and re-running them is a no-op', async () => {
  const { rows } = await db.pool.query<{ name: string }>('select name from pgmigrations order by run_on, id');
  assert.ok(rows.length > 0);
  assert.equal(rows[0]!.name, '0001_customers_and_meters');
  assert.deepEqual(await migrate(db.url), []);
});

test('NUMERIC values come back as exact strings, never JS numbers', async () => {
  const { rows } = await db.pool.query<{ v: unknown }>(`select 0.1::numeric + 0.2::numeric + 12345678901234567890.000000001 as v`);
  assert.equal(rows[0]!.v, '12345678901234567890.300000001');
});
