import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import type { Logger } from 'pino';

export const migrationsDir = fileURLToPath(new URL('../../migrations', import.meta.url));

/** Applies pending SQL migrations under one advisory lock, so concurrent starters are safe. */
export async function migrate(databaseUrl: string, logger?: Logger): Promise<string[]> {
  const applied = await runner({
    databaseUrl,
    dir: migrationsDir,
    direction: 'up',
    migrationsTable: 'pgmigrations',
    checkOrder: true,
    singleTransaction: true,
    advisoryLockMode: 'wait',
    log: (msg: string) => logger?.debug({ migration: msg }, 'migration'),
  });
  const names = applied.map((m) => m.name);
  if (names.length > 0) logger?.info({ applied: names }, 'migrations applied');
  return names;
}
