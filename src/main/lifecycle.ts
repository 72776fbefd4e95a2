import type { Logger } from 'pino';

export interface Lifecycle {
  /** Registers something to stop at shutdown; stops run in reverse order of registration. */
  defer(name: string, stop: () => Promise<unknown>): void;
  shutdown(reason: string, code?: number): Promise<never>;
}

/** Owns SIGINT/SIGTERM for an entry point: a first signal stops everything in order, a second exits at once. */
export function createLifecycle(logger: Logger): Lifecycle {
  const stops: Array<[string, () => Promise<unknown>]> = [];
  let stopping = false;

  async function shutdown(reason: string, code = 0): Promise<never> {
    if (stopping) {
      logger.warn('second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ reason }, 'shutting down');
    for (const [name, stop] of stops.reverse()) {
      try {
        await stop();
        logger.info(`${name} stopped`);
      } catch (err) {
        logger.error({ err }, `${name} did not stop cleanly`);
        code = 1;
      }
    }
    logger.flush();
    process.exit(code);
  }

  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void shutdown(signal));
  return { defer: (name, stop) => void stops.push([name, stop]), shutdown };
}
