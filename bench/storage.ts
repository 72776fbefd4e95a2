import type { Queryable } from '../src/db/transaction';

/**
 * Bytes on disk per stored event: heap, TOAST and every index of usage_events (all its
 * partitions when it is partitioned) over its row count, after a VACUUM: a settled figure, with the
 * visibility and free space maps production would have. Pass a client outside a transaction.
 */
export async function bytesPerStoredEvent(db: Queryable): Promise<number> {
  await db.query('vacuum usage_events');
  const { rows } = await db.query<{ bytes: string; n: string }>(
    `select coalesce((select sum(pg_total_relation_size(relid)) from pg_partition_tree('usage_events')),
                     pg_total_relation_size('usage_events'))::text as bytes,
            (select count(*) from usage_events)::text as n`,
  );
  const n = Number(rows[0]!.n);
  return n === 0 ? NaN : Math.round(Number(rows[0]!.bytes) / n);
}
