import type { Queryable } from '../db/transaction';

/**
 * The 4-byte `short_id` by which usage_events refers to customers and meters (migration 0027),
 * looked up by their uuid. A short id never changes (trigger-enforced) and neither row can be
 * deleted, so an entry, once read, is cached for the life of the process: one read per customer
 * or meter the process sees, not per event.
 */
export class ShortIds {
  private readonly customers = new Map<string, number>();
  private readonly meters = new Map<string, number>();

  /** Reads the short ids of the events' customers and meters not cached yet; throws for an id that does not exist. */
  async load(db: Queryable, events: Iterable<{ customerId: string; meterId: string }>): Promise<void> {
    const missingCustomers = new Set<string>();
    const missingMeters = new Set<string>();
    for (const e of events) {
      if (!this.customers.has(e.customerId)) missingCustomers.add(e.customerId);
      if (!this.meters.has(e.meterId)) missingMeters.add(e.meterId);
    }
    if (missingCustomers.size === 0 && missingMeters.size === 0) return;
    const customers = [...missingCustomers];
    const meters = [...missingMeters];
    const { rows } = await db.query<{ kind: 'customer' | 'meter'; id: string; short_id: number }>(
      `select 'customer' as kind, id, short_id from customers where id = any($1::uuid[])
       union all
       select 'meter', id, short_id from meters where id = any($2::uuid[])`,
      [customers, meters],
    );
    for (const r of rows) (r.kind === 'customer' ? this.customers : this.meters).set(r.id, r.short_id);
    for (const id of customers) if (!this.customers.has(id)) throw new Error(`no customer ${id}`);
    for (const id of meters) if (!this.meters.has(id)) throw new Error(`no meter ${id}`);
  }

  /** A loaded customer's short id. */
  customer(id: string): number {
    return this.customers.get(id)!;
  }

  /** A loaded meter's short id. */
  meter(id: string): number {
    return this.meters.get(id)!;
  }
}
