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

export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, redact: { paths: redactPaths, censor: '[redacted]' } });
}
