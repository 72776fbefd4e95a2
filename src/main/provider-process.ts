import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { startChildServer } from '../process/child-server';

const entry = fileURLToPath(new URL('./provider-simulator.ts', import.meta.url));

async function healthy(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

/**
 * Runs the payment-provider simulator as its own process, so every charge crosses a real
 * network boundary (and its faults: timeouts, 5xx, lost responses). Reuses a simulator already
 * answering on the port.
 */
export async function startProviderProcess(opts: { port: number; dataDir: string; logLevel: string; logger: Logger }) {
  const url = `http://127.0.0.1:${opts.port}`;
  if (await healthy(url)) {
    opts.logger.info({ url }, 'reusing the payment-provider simulator already running on this port');
    return { url, startedHere: false, stop: async () => undefined };
  }
  const server = await startChildServer({
    name: `the payment-provider simulator on ${url}`,
    command: process.execPath,
    args: ['--import', 'tsx', entry],
    spawnOptions: {
      env: { ...process.env, PROVIDER_PORT: String(opts.port), DATA_DIR: opts.dataDir, LOG_LEVEL: opts.logLevel },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
    ready: () => healthy(url),
    timeoutMs: 20_000,
    killAfterMs: 5_000,
  });
  opts.logger.info({ url }, 'payment-provider simulator started');
  return { url, startedHere: true, stop: server.stop };
}
