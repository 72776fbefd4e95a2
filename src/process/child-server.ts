import { spawn, type SpawnOptions } from 'node:child_process';

export interface ChildServer {
  /** SIGTERM, then SIGKILL if it has not exited after `killAfterMs`. */
  stop(): Promise<void>;
}

/**
 * Starts a server as a child process and resolves once `ready()` says it answers. Fails with the
 * child's last stderr when it exits first or does not answer within `timeoutMs`.
 */
export async function startChildServer(opts: {
  name: string;
  command: string;
  args: string[];
  spawnOptions: SpawnOptions;
  ready: () => Promise<boolean>;
  timeoutMs: number;
  killAfterMs: number;
}): Promise<ChildServer> {
  const child = spawn(opts.command, opts.args, opts.spawnOptions);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));

  const deadline = Date.now() + opts.timeoutMs;
  while (!(await opts.ready())) {
    if (exitCode !== undefined || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${opts.name} did not start (exit ${exitCode ?? 'timeout'})${stderr ? `:\n${stderr}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
