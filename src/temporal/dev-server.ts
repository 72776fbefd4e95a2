import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import type { Logger } from 'pino';

export interface DevServerOptions {
  cliPath: string;
  port: number;
  uiPort: number;
  namespace: string;
  /** SQLite file, so workflows survive a restart of `npm start`. */
  dbFile: string;
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
  await mkdir(path.dirname(path.resolve(opts.dbFile)), { recursive: true });
  const child = spawn(
    opts.cliPath,
    [
      'server', 'start-dev',
      '--ip', '127.0.0.1',
      '--port', String(opts.port),
      '--ui-port', String(opts.uiPort),
      '--namespace', opts.namespace,
      '--db-filename', path.resolve(opts.dbFile),
      '--log-level', 'warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const deadline = Date.now() + 30_000;
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  while (!(await reachable(address, 1000))) {
    if (exitCode !== undefined || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`Temporal dev server did not start on ${address} (exit ${exitCode ?? 'timeout'}):\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  opts.logger?.info({ address, ui: `http://127.0.0.1:${opts.uiPort}` }, 'Temporal dev server started');
  return {
    address,
    startedHere: true,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
