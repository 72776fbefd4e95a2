import type { z } from 'zod';
import type { Config } from '../config';
import type { Result } from '../domain/result';
import { isConnectionError } from '../db/connection-errors';
import { createPool, type Pool } from '../db/pool';

/**
 * Exit statuses of every command: 0 done; 1 refused or partly failed (not found, conflict,
 * rejected events, a tampered audit log); 2 could not run (bad arguments or input, or PostgreSQL,
 * Temporal or the API not answering).
 */
export const exitCodes = { ok: 0, failed: 1, cannotRun: 2 } as const;
export type ExitCode = (typeof exitCodes)[keyof typeof exitCodes];

/** A failure reported as its message alone, on stderr, with its exit status. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = exitCodes.failed,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** What every command is handed: the validated environment and where its output goes. */
export interface CliContext {
  config: Config;
  databaseUrl: string;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** The URL without its password, to name a database in messages. */
export function describeDatabase(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  url.password = '';
  return url.toString();
}

/**
 * Opens a small pool, fails with what to start or set when PostgreSQL does not answer (before
 * or during the command: "could not run", like any other unreachable dependency), and always
 * closes it.
 */
export async function withDatabase<T>(ctx: CliContext, work: (pool: Pool) => Promise<T>): Promise<T> {
  const pool = createPool(ctx.databaseUrl, 2);
  const unreachable = (err: unknown) =>
    new CliError(
      `cannot reach PostgreSQL at ${describeDatabase(ctx.databaseUrl)} (start it with \`npm start\`, or set DATABASE_URL): ${err instanceof Error ? err.message : String(err)}`,
      exitCodes.cannotRun,
    );
  try {
    await pool.query('select 1').catch((err: unknown) => {
      throw unreachable(err);
    });
    return await work(pool).catch((err: unknown) => {
      throw isConnectionError(err) ? unreachable(err) : err;
    });
  } finally {
    await pool.end();
  }
}

/**
 * The value of a service's result, or the refusal as the command's failure: its message (the
 * CLI writes sentences in lower case without a full stop) with exit status 1.
 */
export function unwrapForCli<T>(result: Result<T>): T {
  if (!result.ok) throw new CliError(cliMessage(result.message));
  return result.value;
}

const cliMessage = (sentence: string): string => (sentence.charAt(0).toLowerCase() + sentence.slice(1)).replace(/\.$/, '');

/** Validates what the caller typed or supplied; a failure names each offending field and cannot run. */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `  ${i.path.length ? i.path.join('.') : what}: ${i.message}`);
    throw new CliError(`invalid ${what}:\n${issues.join('\n')}`, exitCodes.cannotRun);
  }
  return parsed.data;
}
