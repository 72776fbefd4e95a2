import { pino, type Logger } from 'pino';

/** Header and field paths that may carry credentials; never logged. */
export const redactPaths = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'apiKey',
  'secret',
  '*.apiKey',
  '*.secret',
];

const redact = { paths: redactPaths, censor: '[redacted]' };

export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, redact });
}

/** Process logger for entry points: JSON lines, pretty-printed when a human is watching a terminal. */
export function entryLogger(level: string): Logger {
  return pino({
    level,
    redact,
    ...(process.stdout.isTTY ? { transport: { target: 'pino-pretty', options: { ignore: 'pid,hostname' } } } : {}),
  });
}
