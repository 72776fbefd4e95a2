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

/** One part of usage_events on disk: its bytes per stored event and how full its pages are. */
export interface StoragePart {
  part: string;
  bytesPerEvent: number;
  /** Heap: live tuples' bytes over the table's; an index: its leaf pages' average density (pgstattuple). */
  fullPercent: number;
}

/**
 * Where bytesPerStoredEvent's bytes go: the heap (with TOAST, free space and visibility maps) and
 * each index, summed over the partitions, with how full their pages are: what a rewrite could win
 * (REINDEX, VACUUM FULL) against what the rows themselves take. Reads every page (pgstattuple).
 */
export async function storageBreakdown(db: Queryable): Promise<StoragePart[]> {
  await db.query('create extension if not exists pgstattuple');
  const n = Number((await db.query<{ n: string }>('select count(*)::text as n from usage_events')).rows[0]!.n);
  const { rows } = await db.query<{ part: string; bytes: string; used: string }>(
    `select 'heap' as part, sum(pg_table_size(relid))::text as bytes, sum((pgstattuple(relid)).tuple_len)::text as used
       from pg_partition_tree('usage_events') where isleaf
     union all
     select i.indexrelid::regclass::text, sum(pg_relation_size(p.relid))::text,
            sum(pg_relation_size(p.relid) * (pgstatindex(p.relid)).avg_leaf_density / 100)::text
       from pg_index i cross join lateral pg_partition_tree(i.indexrelid) p
      where i.indrelid = 'usage_events'::regclass and p.isleaf
      group by i.indexrelid`,
  );
  return rows.map((r) => ({
    part: r.part,
    bytesPerEvent: Math.round(Number(r.bytes) / n),
    fullPercent: Math.round((Number(r.used) / Number(r.bytes)) * 100),
  }));
}
