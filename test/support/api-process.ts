/**
 * One API process for tests that need real OS processes: `startApiProcess(db)` forks this file,
 * which serves the full API (`startKeysApp`: real keys, own pool, own LISTEN connection) on the
 * given database and reports its URL.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { startKeysApp } from './keys-app';

export interface ApiProcess {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export async function startApiProcess(databaseUrl: string): Promise<ApiProcess> {
  // Not a test process: without the runner's marker it reports responses that break the
  // OpenAPI document by its exit code, not to a test it does not have.
  const { NODE_TEST_CONTEXT: _runner, ...env } = process.env;
  const child = fork(import.meta.filename, ['serve', databaseUrl], { execArgv: ['--import', 'tsx'], stdio: 'inherit', env });
  const [url] = (await once(child, 'message')) as [string];
  return {
    url,
    pid: child.pid!,
    stop: async () => {
      // A process that already died (what a failing test may be about) has nothing to wait for,
      // but its exit still tells whether it broke the OpenAPI document.
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
      if (child.exitCode !== 0) {
        throw new Error(`API process ${child.pid} exited with ${child.exitCode ?? child.signalCode} (its output says why)`);
      }
    },
  };
}

if (process.argv[2] === 'serve') {
  const url = process.argv[3]!;
  const app = await startKeysApp({ url });
  process.send!(app.url);
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
}
