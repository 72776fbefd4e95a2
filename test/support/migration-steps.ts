import { readdirSync } from 'node:fs';
import { runner } from 'node-pg-migrate';
import { migrationsDir } from '../../src/db/migrate';

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
