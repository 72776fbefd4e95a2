import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createPool, type Pool } from '../../src/db/pool';

export interface TestDatabase {
  url: string;
  pool: Pool;
  drop(): Promise<void>;
}

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run integration tests through \`npm test\` (scripts/test.ts).`);
  return value;
}

/**
 * A fresh, fully migrated database cloned from the run's template (`empty`: a database with no
 * tables, for what migrates by itself); dropped by `drop()`.
 */
export async function createTestDatabase({ empty = false } = {}): Promise<TestDatabase> {
  const maintenanceUrl = requireEnv('TEST_PG_URL');
  const template = requireEnv('TEST_PG_TEMPLATE');
  const name = `meterflow_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: maintenanceUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${pg.escapeIdentifier(name)}${empty ? '' : ` template ${pg.escapeIdentifier(template)}`}`);
  } finally {
    await admin.end();
  }
  const url = new URL(maintenanceUrl);
  url.pathname = `/${name}`;
  const pool = createPool(url.toString(), 20);
  return {
    url: url.toString(),
    pool,
    drop: async () => {
      await pool.end();
      const c = new pg.Client({ connectionString: maintenanceUrl });
      await c.connect();
      await c.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
      await c.end();
    },
  };
}
