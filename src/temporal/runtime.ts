import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import type { Logger } from 'pino';

const pinoLevel: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/** Routes the Temporal SDK's own logs (worker state, core) into our pino logger. Call once per process. */
export function installTemporalRuntime(logger: Logger, level: LogLevel = 'WARN'): void {
  const sdk = logger.child({ component: 'temporal-sdk' });
  Runtime.install({
    // Entry points own the shutdown order (API, then worker, then servers).
    shutdownSignals: [],
    logger: new DefaultLogger(level, ({ level: l, message, meta }) => sdk[pinoLevel[l]](meta ?? {}, message)),
  });
}
