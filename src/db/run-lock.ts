import type pg from 'pg';
import type { Pool } from './pool';

/** Refused when another run holds the lock: two runs of one maintenance job would race on the same rows and files. */
export class RunBusyError extends Error {}

/**
 * Runs `work` on one pooled session that holds the session advisory lock `name`, or throws
 * RunBusyError at once when another session holds it. The lock goes with the session's release.
 * `work` calls `markBroken` when it leaves the session unusable (a failed ROLLBACK): the connection
 * is then closed instead of returned to the pool, as it is when the unlock fails.
 */
export async function withRunLock<T>(
  pool: Pool,
  name: string,
  busyMessage: string,
  work: (client: pg.PoolClient, markBroken: () => void) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock(hashtext($1)) as locked', [name]);
    if (!rows[0]!.locked) throw new RunBusyError(busyMessage);
    try {
      return await work(client, () => (broken = true));
    } finally {
      if (!broken) await client.query('select pg_advisory_unlock(hashtext($1))', [name]).catch(() => (broken = true));
    }
  } finally {
    client.release(broken);
  }
}
