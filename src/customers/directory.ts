import type { Pool } from '../db/pool';

/**
 * External customer ids → internal ids, in memory, so ingestion resolves customers without a
 * database read per request. Safe to cache without invalidation: customers are never deleted and
 * never change id (enforced by a trigger). Unknown ids are remembered briefly so a flood of them
 * costs one query per `negativeTtlMs`, while a customer created through another process becomes
 * usable within that time (at once through this one: see `add`).
 */
export class CustomerDirectory {
  private readonly known = new Map<string, string>();
  private readonly unknownUntil = new Map<string, number>();

  constructor(
    private readonly pool: Pool,
    private readonly maxEntries = 200_000,
    private readonly negativeTtlMs = 1_000,
  ) {}

  /** Internal ids of these external ids; unknown customers are absent from the result. */
  async resolve(externalIds: ReadonlySet<string>): Promise<ReadonlyMap<string, string>> {
    const now = Date.now();
    const result = new Map<string, string>();
    const missing: string[] = [];
    for (const externalId of externalIds) {
      const id = this.known.get(externalId);
      if (id) result.set(externalId, id);
      else if ((this.unknownUntil.get(externalId) ?? 0) <= now) missing.push(externalId);
    }
    if (missing.length === 0) return result;
    const { rows } = await this.pool.query<{ id: string; external_id: string }>(
      'select id, external_id from customers where external_id = any($1::text[])',
      [missing],
    );
    for (const row of rows) {
      this.add(row.external_id, row.id);
      result.set(row.external_id, row.id);
    }
    for (const externalId of missing) {
      if (!result.has(externalId)) this.unknownUntil.set(externalId, now + this.negativeTtlMs);
    }
    if (this.unknownUntil.size > this.maxEntries) this.unknownUntil.clear();
    return result;
  }

  add(externalId: string, id: string): void {
    this.unknownUntil.delete(externalId);
    if (this.known.size >= this.maxEntries) {
      // Map iteration order is insertion order: drop the oldest entry.
      this.known.delete(this.known.keys().next().value!);
    }
    this.known.set(externalId, id);
  }
}
