import type { Queryable } from '../../src/db/transaction';

let stored = 0;

/**
 * Stores `count` events of one meter straight into usage_events, one per second from `from`
 * (the first at `from`), each with a fresh id: for tests about what is done with stored events
 * (invoices, reconciliation), where the ingest path is not the subject.
 */
export async function storeEvents(
  db: Queryable,
  e: { customerId: string; meterId: string; from: Date; count: number; value?: string | null },
): Promise<void> {
  await db.query(
    `insert into usage_events (customer_short_id, event_id, meter_short_id, event_time, received_at, value, properties, timestamp_provided, late)
     select (select short_id from customers where id = $1::uuid), 'e-' || ($5::int + i), (select short_id from meters where id = $2::uuid), $3::timestamptz + (i - 1) * interval '1 second', now(), $6::numeric, '{}', true, false
       from generate_series(1, $4) i`,
    [e.customerId, e.meterId, e.from, e.count, stored, e.value ?? null],
  );
  stored += e.count;
}
