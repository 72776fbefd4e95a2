import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import type { Logger } from 'pino';
import { startChildServer } from '../process/child-server';

export interface DevServerOptions {
  cliPath: string;
  port: number;
  uiPort: number;
  namespace: string;
  /** SQLite file, so workflows survive a restart of `npm start`; unset, the store is in memory. */
  dbFile?: string;
  logger?: Logger;
}

export interface RunningTemporal {
  address: string;
  startedHere: boolean;
  stop(): Promise<void>;
}

async function reachable(address: string, timeoutMs: number): Promise<boolean> {
  try {
    const connection = await Connection.connect({ address, connectTimeout: timeoutMs });
    try {
      await connection.healthService.check({});
      return true;
    } finally {
      await connection.close();
    }
  } catch {
    return false;
  }
}

/**
 * Starts `temporal server start-dev` (frontend + Web UI) on localhost, or reuses a Temporal
 * server already listening on the port.
 */
export async function startTemporalDevServer(opts: DevServerOptions): Promise<RunningTemporal> {
  const address = `127.0.0.1:${opts.port}`;
  if (await reachable(address, 1000)) {
    opts.logger?.info({ address }, 'reusing the Temporal server already running on this port');
    return { address, startedHere: false, stop: async () => undefined };
  }
  if (opts.dbFile) await mkdir(path.dirname(path.resolve(opts.dbFile)), { recursive: true });
  const server = await startChildServer({
    name: `Temporal dev server on ${address}`,
    command: opts.cliPath,
    args: [
      'server',
      'start-dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(opts.port),
      '--ui-port',
      String(opts.uiPort),
      '--namespace',
      opts.namespace,
      ...(opts.dbFile ? ['--db-filename', path.resolve(opts.dbFile)] : []),
      '--log-level',
      'warn',
    ],
    spawnOptions: { stdio: ['ignore', 'ignore', 'pipe'] },
    ready: () => reachable(address, 1000),
    timeoutMs: 30_000,
    killAfterMs: 10_000,
  });
  opts.logger?.info({ address, ui: `http://127.0.0.1:${opts.uiPort}` }, 'Temporal dev server started');
  return { address, startedHere: true, stop: server.stop };
}
