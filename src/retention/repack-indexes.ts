import type { Pool } from '../db/pool';
import { withRunLock } from '../db/run-lock';

/*
 * Repacking usage_events' indexes. Event ids land in the middle of each customer's key range, so
 * the primary key's pages split in two and stay about half full (bench:ingest: 53 %, 86 of 237
 * bytes per event); a rebuild packs them to the B-tree fillfactor (90 %). Each partition's index
 * is rebuilt with REINDEX INDEX CONCURRENTLY, one at a time: ingest and readers go on (no lock
 * that blocks them), at the cost of one rebuild's I/O and room for one partition index twice.
 * A rebuild cut short (a crash, a cancel) leaves an invalid `…_ccnew` (or `…_ccold`) index
 * behind, which every later insert would still maintain: those are dropped first, so a run after
 * any failure finishes the job.
 */

/** Other repack runs are refused while this one holds it (session advisory lock). */
const RUN_LOCK = 'meterflow:events-repack-indexes';

export interface RepackSummary {
  indexes_rebuilt: number;
  bytes_before: number;
  bytes_after: number;
  /** Invalid indexes an earlier rebuild left behind, dropped first. */
  leftovers_dropped: string[];
}

/** Every partition's index of usage_events, with its size now. */
const PARTITION_INDEXES = `
  select p.relid::regclass::text as name, pg_relation_size(p.relid)::text as bytes
    from pg_index i cross join lateral pg_partition_tree(i.indexrelid) p
   where i.indrelid = 'usage_events'::regclass and p.isleaf
   order by 1`;

const LEFTOVERS = `
  select i.indexrelid::regclass::text as name
    from pg_index i join pg_partition_tree('usage_events') t on t.relid = i.indrelid
   where not i.indisvalid and i.indexrelid::regclass::text ~ '_cc(new|old)[0-9]*$'`;

export async function repackEventIndexes(
  pool: Pool,
  progress?: (done: number, total: number, index: string) => void,
): Promise<RepackSummary> {
  // One session: the lock is the session's, and REINDEX CONCURRENTLY runs outside any transaction.
  return withRunLock(pool, RUN_LOCK, 'another `events repack-indexes` run is in progress', async (client) => {
    const leftovers = (await client.query<{ name: string }>(LEFTOVERS)).rows.map((r) => r.name);
    // Names as PostgreSQL rendered them (regclass: quoted where needed).
    for (const name of leftovers) await client.query(`drop index concurrently if exists ${name}`);
    const before = (await client.query<{ name: string; bytes: string }>(PARTITION_INDEXES)).rows;
    for (const [i, { name }] of before.entries()) {
      await client.query(`reindex index concurrently ${name}`);
      progress?.(i + 1, before.length, name);
    }
    const after = (await client.query<{ name: string; bytes: string }>(PARTITION_INDEXES)).rows;
    const total = (rows: Array<{ bytes: string }>) => rows.reduce((sum, r) => sum + Number(r.bytes), 0);
    return { indexes_rebuilt: before.length, bytes_before: total(before), bytes_after: total(after), leftovers_dropped: leftovers };
  });
}
