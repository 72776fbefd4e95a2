import type { Queryable } from '../db/transaction';

/** A billed period whose raw events may be archived: its invoice has left draft, so it is frozen. */
export interface PeriodToArchive {
  invoiceId: string;
  customerId: string;
  customerExternalId: string;
  periodStart: Date;
  periodEnd: Date;
  invoiceStatus: string;
}

/** One stored event as it is archived: every column, exact (timestamps to the microsecond, NUMERIC and JSONB as text). */
export interface ArchivedEventRow {
  customer_id: string;
  event_id: string;
  meter_id: string;
  event_time: string;
  received_at: string;
  value: string | null;
  properties: string;
  timestamp_provided: boolean;
  late: boolean;
}

export interface ArchivedPeriod {
  customerId: string;
  customerExternalId: string;
  periodStart: Date;
  periodEnd: Date;
  invoiceId: string;
  directory: string;
  file: string;
  eventCount: string;
  sha256: string;
  archivedAt: Date;
}

/**
 * Periods ended before `before` whose invoice is finalized, paid, payment_failed or void (every
 * status but draft: amounts and usage no longer change) and that are not archived yet, oldest first.
 */
export async function periodsToArchive(db: Queryable, before: Date): Promise<PeriodToArchive[]> {
  const { rows } = await db.query<{
    id: string;
    customer_id: string;
    external_id: string;
    period_start: Date;
    period_end: Date;
    status: string;
  }>(
    `select i.id, i.customer_id, c.external_id, i.period_start, i.period_end, i.status
       from invoices i join customers c on c.id = i.customer_id
      where i.status <> 'draft' and i.period_end <= $1 and i.kind = 'period'
        and not exists (select 1 from archived_periods a where a.customer_id = i.customer_id and a.period_start = i.period_start)
      order by i.period_start, i.customer_id`,
    [before],
  );
  return rows.map((r) => ({
    invoiceId: r.id,
    customerId: r.customer_id,
    customerExternalId: r.external_id,
    periodStart: r.period_start,
    periodEnd: r.period_end,
    invoiceStatus: r.status,
  }));
}

export async function isArchived(db: Queryable, customerId: string, periodStart: Date): Promise<boolean> {
  const { rowCount } = await db.query('select 1 from archived_periods where customer_id = $1 and period_start = $2', [
    customerId,
    periodStart,
  ]);
  return Boolean(rowCount);
}

const utc = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/**
 * Opens a cursor over a period's events on `db`, which must be a client inside a transaction;
 * read it with `fetchEvents`. Ordered as the (customer, meter, time) index reads them.
 */
export async function openPeriodCursor(db: Queryable, cursor: string, customerId: string, start: Date, end: Date): Promise<void> {
  await db.query(
    `declare ${cursor} no scroll cursor for
       select $1::uuid as customer_id, e.event_id, m.id as meter_id, ${utc('e.event_time')} as event_time,
              ${utc('e.received_at')} as received_at, e.value::text as value, e.properties::text as properties, e.timestamp_provided, e.late
         from usage_events e join meters m on m.short_id = e.meter_short_id
        where e.customer_short_id = (select short_id from customers where id = $1) and e.event_time >= $2 and e.event_time < $3
        order by e.meter_short_id, e.event_time, e.event_id`,
    [customerId, start, end],
  );
}

export async function fetchEvents(db: Queryable, cursor: string, count: number): Promise<ArchivedEventRow[]> {
  // The pg type parsers would turn properties into objects (and big JSON numbers into doubles): read text.
  return (await db.query<ArchivedEventRow>(`fetch ${Math.trunc(count)} from ${cursor}`)).rows;
}

/** Deletes a period's raw events; answers how many. */
export async function deletePeriodEvents(db: Queryable, customerId: string, start: Date, end: Date): Promise<number> {
  const { rowCount } = await db.query(
    'delete from usage_events where customer_short_id = (select short_id from customers where id = $1) and event_time >= $2 and event_time < $3',
    [customerId, start, end],
  );
  return rowCount ?? 0;
}

export async function recordArchivedPeriod(db: Queryable, p: Omit<ArchivedPeriod, 'customerExternalId'>): Promise<void> {
  await db.query(
    `insert into archived_periods (customer_id, period_start, period_end, invoice_id, directory, file, event_count, sha256, archived_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [p.customerId, p.periodStart, p.periodEnd, p.invoiceId, p.directory, p.file, p.eventCount, p.sha256, p.archivedAt],
  );
}

/** Every period archived into `directory`, for its manifest. */
export async function archivedIn(db: Queryable, directory: string): Promise<ArchivedPeriod[]> {
  const { rows } = await db.query<{
    customer_id: string;
    external_id: string;
    period_start: Date;
    period_end: Date;
    invoice_id: string;
    directory: string;
    file: string;
    event_count: string;
    sha256: string;
    archived_at: Date;
  }>(
    `select a.customer_id, c.external_id, a.period_start, a.period_end, a.invoice_id, a.directory, a.file, a.event_count::text, a.sha256, a.archived_at
       from archived_periods a join customers c on c.id = a.customer_id
      where a.directory = $1 order by a.period_start, a.customer_id`,
    [directory],
  );
  return rows.map((r) => ({
    customerId: r.customer_id,
    customerExternalId: r.external_id,
    periodStart: r.period_start,
    periodEnd: r.period_end,
    invoiceId: r.invoice_id,
    directory: r.directory,
    file: r.file,
    eventCount: r.event_count,
    sha256: r.sha256,
    archivedAt: r.archived_at,
  }));
}

/** Of these invoices, those whose period's raw events were archived (and are no longer in usage_events). */
export async function archivedInvoiceIds(db: Queryable, invoiceIds: string[]): Promise<Set<string>> {
  if (invoiceIds.length === 0) return new Set();
  // An interim invoice's events are archived with its period's (keyed by the period invoice).
  const { rows } = await db.query<{ invoice_id: string }>(
    `select i.id as invoice_id from invoices i
      where i.id = any($1)
        and exists (select 1 from archived_periods a where a.customer_id = i.customer_id and a.period_start = i.period_start)`,
    [invoiceIds],
  );
  return new Set(rows.map((r) => r.invoice_id));
}
