import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { runner } from 'node-pg-migrate';
import pg from 'pg';
import { ensureDatabase } from '../../src/db/embedded';
import { migrationsDir } from '../../src/db/migrate';
import { createPool, type Pool } from '../../src/db/pool';

/**
 * For tests of one migration on a populated database: runs `count` of this repository's
 * migrations on `databaseUrl`, up or down, in one transaction and in file order, as the migrator does.
 */
export const migrateSteps = (databaseUrl: string, direction: 'up' | 'down', count: number) =>
  runner({
    databaseUrl,
    dir: migrationsDir,
    direction,
    count,
    migrationsTable: 'pgmigrations',
    checkOrder: true,
    singleTransaction: true,
    log: () => undefined,
  });

/** How many migrations come before the one whose file name starts with `prefix` (e.g. '0027'). */
export const migrationsBefore = (prefix: string) => readdirSync(migrationsDir).filter((f) => f.endsWith('.sql') && f < prefix).length;

export interface ScratchDatabase {
  url: string;
  pool: Pool;
  /** Closes the pool, drops the database and the roles named. */
  drop(roles?: string[]): Promise<void>;
}

async function asAdmin<T>(run: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: process.env.TEST_PG_URL });
  await admin.connect();
  try {
    return await run(admin);
  } finally {
    await admin.end();
  }
}

/**
 * A database of its own on TEST_PG_URL's server, for a test that migrates it step by step; with
 * `icuLocale`, its default collation is that ICU locale instead of the server's.
 */
export async function scratchDatabase(prefix: string, poolSize: number, options: { icuLocale?: string } = {}): Promise<ScratchDatabase> {
  const name = `meterflow_${prefix}_${randomBytes(6).toString('hex')}`;
  const { icuLocale } = options;
  if (icuLocale) {
    await asAdmin((admin) =>
      admin.query(
        `create database ${pg.escapeIdentifier(name)} template template0 locale_provider icu icu_locale ${pg.escapeLiteral(icuLocale)}`,
      ),
    );
  }
  // Creates the database unless it was just created above; either way, its URL.
  const url = await ensureDatabase(process.env.TEST_PG_URL!, name);
  const pool = createPool(url, poolSize);
  return {
    url,
    pool,
    async drop(roles = []) {
      await pool.end();
      await asAdmin(async (admin) => {
        await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
        for (const role of roles) await admin.query(`drop role if exists ${pg.escapeIdentifier(role)}`);
      });
    },
  };
}
