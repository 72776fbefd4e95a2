import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';

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
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    env: { ...process.env, PROVIDER_PORT: String(opts.port), DATA_DIR: opts.dataDir, LOG_LEVEL: opts.logLevel },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  const deadline = Date.now() + 20_000;
  while (!(await healthy(url))) {
    if (exitCode !== undefined || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the payment-provider simulator did not start on ${url} (exit ${exitCode ?? 'timeout'})`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  opts.logger.info({ url }, 'payment-provider simulator started');
  return {
    url,
    startedHere: true,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
