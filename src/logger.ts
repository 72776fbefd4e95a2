import { createRequire } from 'node:module';
import { pino, type Logger, type TransportSingleOptions } from 'pino';

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

export interface TerminalFacts {
  nodeEnv: string | undefined;
  /** Whether stdout is a terminal. */
  isTTY: boolean;
  /** Resolves a module id to its file, throwing when it is not installed (require.resolve). */
  resolve: (id: string) => string;
}

/**
 * The pretty-printing transport for a human at a terminal, or none (JSON lines). Never in
 * production: pino-pretty is a devDependency, absent from the image (`npm ci --omit=dev`), and a
 * terminal there (`docker compose run`, `docker run -it`, `kubectl run -it`) is no reason to crash.
 * Elsewhere only when it resolves, and by its resolved path, so pino loads the very file found here.
 */
export function prettyTransport(facts: TerminalFacts): TransportSingleOptions | undefined {
  if (!facts.isTTY || facts.nodeEnv === 'production') return undefined;
  let target: string;
  try {
    target = facts.resolve('pino-pretty');
  } catch {
    return undefined;
  }
  return { target, options: { ignore: 'pid,hostname' } };
}

/** Process logger for entry points: JSON lines, pretty-printed when a developer watches a terminal. */
export function entryLogger(level: string): Logger {
  const transport = prettyTransport({
    nodeEnv: process.env.NODE_ENV,
    isTTY: process.stdout.isTTY === true,
    resolve: createRequire(import.meta.url).resolve,
  });
  return pino({ level, redact, ...(transport ? { transport } : {}) });
}
