import { pino, type Logger } from 'pino';
import { redactPaths } from '../logger';

/** Process logger for entry points: JSON lines, pretty-printed when a human is watching a terminal. */
export function entryLogger(level: string): Logger {
  return pino({
    level,
    redact: { paths: redactPaths, censor: '[redacted]' },
    ...(process.stdout.isTTY ? { transport: { target: 'pino-pretty', options: { ignore: 'pid,hostname' } } } : {}),
  });
}
