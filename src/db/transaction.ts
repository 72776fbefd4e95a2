import type pg from 'pg';
import type { Pool } from './pool';

/** A pool or a client inside a transaction: store functions accept either. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

/** Runs `work` in one transaction on one client: committed if it resolves, rolled back if it throws. */
export async function inTransaction<T>(pool: Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('begin');
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (err) {
    // A connection that cannot even roll back is discarded rather than handed to the next caller.
    await client.query('rollback').catch(() => {
      broken = true;
    });
    throw err;
  } finally {
    client.release(broken);
  }
}
