import { escapeLiteral, type PoolClient } from 'pg';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { from as copyFrom } from 'pg-copy-streams';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { isConnectionError } from '../db/connection-errors';
import type { Pool } from '../db/pool';
import { canonicalJson } from '../domain/metering/canonical-json';
import { DecimalSum } from '../domain/metering/decimal-sum';
import { ShortIds } from './short-ids';

/** An event validated and resolved against its meter, ready to store. */
export interface PreparedEvent {
  /** External id, for messages. */
  customer: string;
  customerId: string;
  eventId: string;
  meterId: string;
  /** `Date#toISOString()` of an instant in years 0001–9999: fixed width, so text order is time order. */
  eventTime: string;
  receivedAt: string;
  value: string | null;
  /** JSON text of the event's properties. */
  properties: string;
  timestampProvided: boolean;
  late: boolean;
}

/** Same event sent twice (a retry), as opposed to another event reusing the id. */
function samePayload(a: PreparedEvent, b: PreparedEvent): boolean {
  return (
    a.meterId === b.meterId &&
    a.timestampProvided === b.timestampProvided &&
    (!a.timestampProvided || a.eventTime === b.eventTime) &&
    canonicalJson(JSON.parse(a.properties)) === canonicalJson(JSON.parse(b.properties))
  );
}

/** Backpressure: more rows wait than the writer queues; nothing of the request was stored. */
export class IngestQueueFull extends Error {
  constructor() {
    super('The ingest queue is full; retry shortly.');
    this.name = 'IngestQueueFull';
  }
}

export type WriteOutcome = { status: 'accepted' | 'duplicate' | 'conflict' };
// Shared and frozen: a group of thousands of rows needs no object per outcome.
const ACCEPTED: WriteOutcome = Object.freeze({ status: 'accepted' });
const DUPLICATE: WriteOutcome = Object.freeze({ status: 'duplicate' });
const CONFLICT: WriteOutcome = Object.freeze({ status: 'conflict' });

export interface WriteResult {
  outcomes: WriteOutcome[];
  /** Atomic writes only: true when something failed and nothing was stored. */
  rolledBack: boolean;
}

export interface IngestWriterOptions {
  /** Rows per transaction: large enough to amortize a commit, small enough to keep latency low. */
  maxRowsPerTransaction: number;
  /**
   * Transactions in flight at once. More than the server's cores: each transaction also spends
   * time in round trips and its commit's WAL flush, when it uses no CPU (measured on 2 cores:
   * 2 in flight → 27k events/s, 3–4 → 45–53k).
   */
  maxConcurrentTransactions: number;
  /** Backpressure: beyond this many queued rows writes fail with `IngestQueueFull`. */
  maxQueuedRows: number;
}

interface Pending {
  events: PreparedEvent[];
  atomic: boolean;
  resolve(result: WriteResult): void;
  reject(err: unknown): void;
}

const RETRYABLE = new Set(['40P01', '40001']);
const MAX_ATTEMPTS = 4;

// On the staging path (below), a group's rows reach PostgreSQL by one text COPY into a per-session
// temporary table (no WAL, emptied at commit or rollback); then one statement stores them. Measured against the former
// statement over unnest() of nine parameter arrays (`npm run bench:ingest`, issue 17): COPY
// text is cheaper to render in Node than nine escaped array literals, and to parse in PostgreSQL.
// The stage also holds the uuids, which the daily counters are keyed by.
const STAGE_TABLE_SQL = `
create temp table if not exists ingest_stage (
  ord int, customer_id uuid, meter_id uuid, customer_short_id int4, event_id text, meter_short_id int4, event_time timestamptz,
  received_at timestamptz, value numeric, properties json, timestamp_provided boolean, late boolean
) on commit delete rows`;
const STAGE_COPY_SQL =
  'copy ingest_stage (ord, customer_id, meter_id, customer_short_id, event_id, meter_short_id, event_time, received_at, value, properties, timestamp_provided, late) from stdin';

// The daily counters' upsert, whichever statement feeds it the new events' per-day aggregates.
// Groups are upserted in key order, so concurrent transactions lock counter rows in the same
// order and cannot deadlock on each other's counters.
const COUNTERS_UPSERT = `
  on conflict (customer_id, meter_id, day) do update set
    event_count = uc.event_count + excluded.event_count,
    value_sum = uc.value_sum + excluded.value_sum,
    updated_at = now()`;

// Fast path: the group's rows are COPYed straight into usage_events (batched heap and partition
// inserts, no staging table, no speculative insertion per row): PostgreSQL CPU per event fell
// from 15.6–15.8 µs to 11.3–11.5 µs in runs at similar load (`npm run bench:ingest`, issue 17).
// A row whose key is already stored fails the COPY with a unique violation: the transaction is
// rolled back and the group takes the staging path below, which tells duplicates from conflicts.
// Rows come in key order (`commit`), as on the staging path. The ingest benches' raw ceiling
// COPYs the same columns with it.
export const USAGE_EVENTS_COPY_SQL =
  'copy usage_events (customer_short_id, event_id, meter_short_id, event_time, received_at, value, properties, timestamp_provided, late) from stdin';
const UNIQUE_VIOLATION = '23505';

// The fast path's counters: per customer, meter and UTC day, its new events and the exact sum of
// their values (summed here, see DecimalSum), as array literals: this statement travels in the
// COPY's simple-query message (`storeDirect`), which carries no parameters. Every element is the
// writer's own rendering (uuids read from the database, days of `toISOString()`, integers, decimal
// sums), and each array is escaped as a whole.
function directCountersSql(customerIds: string[], meterIds: string[], days: string[], counts: number[], sums: string[]): string {
  const array = (values: readonly unknown[], type: string) => `${escapeLiteral(`{${values.join(',')}}`)}::${type}[]`;
  return `
insert into usage_counters as uc (customer_id, meter_id, day, event_count, value_sum)
select * from unnest(${array(customerIds, 'uuid')}, ${array(meterIds, 'uuid')}, ${array(days, 'date')}, ${array(counts, 'int8')}, ${array(sums, 'numeric')})
 order by 1, 2, 3
${COUNTERS_UPSERT}`;
}

// Staging path: one statement stores the new events and folds only those into the daily counters:
// rows that hit the unique key are skipped by ON CONFLICT and never reach the counter CTE. Rows are
// inserted in the group's key order (`ord`, see `commit`): the same order as the fast path's COPY,
// so concurrent transactions lock keys in one order whichever path each takes.
const INSERT_SQL = `
with ins as (
  insert into usage_events (customer_short_id, event_id, meter_short_id, event_time, received_at, value, properties, timestamp_provided, late)
  select customer_short_id, event_id, meter_short_id, event_time, received_at, value, properties, timestamp_provided, late
    from ingest_stage
   order by ord
  on conflict (customer_short_id, event_id) do nothing
  returning customer_short_id, event_id
), new_events as (
  select s.ord, s.customer_id, s.meter_id, s.event_time, s.value
    from ins join ingest_stage s using (customer_short_id, event_id)
), counted as (
  insert into usage_counters as uc (customer_id, meter_id, day, event_count, value_sum)
  select customer_id, meter_id, (event_time at time zone 'UTC')::date, count(*), coalesce(sum(value), 0)
    from new_events group by 1, 2, 3 order by 1, 2, 3
  ${COUNTERS_UPSERT}
)
select ord from new_events`;

// Runs as its own statement so that it sees rows a concurrent transaction committed while ours
// waited on the unique key (READ COMMITTED takes a fresh snapshot per statement).
const CLASSIFY_SQL = `
select u.ord, e.event_id is not null as stored,
       e.meter_short_id = u.meter_short_id and e.properties::jsonb = u.properties::jsonb and e.timestamp_provided = u.timestamp_provided
         and (not u.timestamp_provided or e.event_time = u.event_time) as same
  from ingest_stage u
  left join usage_events e on e.customer_short_id = u.customer_short_id and e.event_id = u.event_id
 where u.ord = any($1::int[])`;

/** A text-format COPY field: backslash, tab, newline and carriage return escaped; null as \N. */
function copyText(value: string): string {
  return /[\\\t\n\r]/.test(value)
    ? value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'))
    : value;
}

/**
 * A group's events unique by key, in key order: the customer's short id, then the event id in
 * code-unit order (the same in every API process, whatever the database's collation); and for each
 * event, the index among them of its key's first occurrence. Sorted by position rather than built
 * through maps of key strings: the writer's process 3.1–3.6 µs per stored event before, 2.8–3.6
 * after (means 3.38 and 3.10; `npm run bench:ingest:writer`, runs interleaved).
 */
function uniqueInKeyOrder(events: readonly PreparedEvent[], ids: ShortIds): { unique: PreparedEvent[]; uniqueIndex: Int32Array } {
  const count = events.length;
  const customers = new Int32Array(count);
  const order = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    customers[i] = ids.customer(events[i]!.customerId);
    order[i] = i;
  }
  // Ties by position: of a key sent more than once, the first sent is the one the database judges.
  order.sort((a, b) => {
    if (customers[a] !== customers[b]) return customers[a]! - customers[b]!;
    const idA = events[a]!.eventId;
    const idB = events[b]!.eventId;
    return idA < idB ? -1 : idA > idB ? 1 : a - b;
  });
  const unique: PreparedEvent[] = [];
  const uniqueIndex = new Int32Array(count);
  let previous = -1;
  for (const i of order) {
    if (previous === -1 || customers[i] !== customers[previous] || events[i]!.eventId !== events[previous]!.eventId)
      unique.push(events[i]!);
    uniqueIndex[i] = unique.length - 1;
    previous = i;
  }
  return { unique, uniqueIndex };
}

/** An event's columns as a text-format COPY line, in the order both COPY statements name them from `customer_short_id` on. */
function copyLine(e: PreparedEvent, ids: ShortIds): string {
  return `${ids.customer(e.customerId)}\t${copyText(e.eventId)}\t${ids.meter(e.meterId)}\t${e.eventTime}\t${e.receivedAt}\t${e.value ?? '\\N'}\t${copyText(e.properties)}\t${e.timestampProvided ? 't' : 'f'}\t${e.late ? 't' : 'f'}\n`;
}

/**
 * Group commit: concurrent requests share transactions. While a transaction is in flight new
 * requests queue; the next transaction takes all of them (up to the row limit). A request's
 * promise resolves only after the COMMIT that contains its rows, so a 2xx always means durable.
 */
export class IngestWriter {
  private readonly queue: Pending[] = [];
  private queuedRows = 0;
  private inFlight = 0;
  private readonly metrics;
  /** Sessions that have their temporary staging table (created on a session's first fallback). */
  private readonly staged = new WeakSet<PoolClient>();
  private readonly shortIds = new ShortIds();

  constructor(
    private readonly pool: Pool,
    private readonly options: IngestWriterOptions = { maxRowsPerTransaction: 5_000, maxConcurrentTransactions: 4, maxQueuedRows: 200_000 },
    registry?: Registry,
  ) {
    const registers = registry ? [registry] : [];
    const queuedRows = () => this.queuedRows;
    this.metrics = {
      rows: new Histogram({
        name: 'ingest_transaction_rows',
        help: 'Events per group-commit transaction',
        buckets: [1, 10, 100, 500, 1000, 2000, 5000, 10000],
        registers,
      }),
      seconds: new Histogram({
        name: 'ingest_transaction_seconds',
        help: 'Duration of a group-commit transaction, BEGIN to COMMIT',
        buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
        registers,
      }),
      events: new Counter({ name: 'ingest_events_total', help: 'Events by write outcome', labelNames: ['status'] as const, registers }),
      // How often the fast path pays a wasted COPY: a client resending whole batches shows here.
      paths: new Counter({
        name: 'ingest_transactions_total',
        help: 'Group-commit transactions by path: direct (COPY into usage_events) or staging (some key was stored already)',
        labelNames: ['path'] as const,
        registers,
      }),
      queued: new Gauge({
        name: 'ingest_queued_rows',
        help: 'Events waiting for a transaction',
        registers,
        collect(this: Gauge) {
          this.set(queuedRows());
        },
      }),
    };
  }

  write(events: PreparedEvent[], atomic = false): Promise<WriteResult> {
    if (events.length === 0) return Promise.resolve({ outcomes: [], rolledBack: false });
    if (this.queuedRows + events.length > this.options.maxQueuedRows) {
      return Promise.reject(new IngestQueueFull());
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ events, atomic, resolve, reject });
      this.queuedRows += events.length;
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.maxConcurrentTransactions && this.queue.length > 0) {
      const group = this.takeGroup();
      this.inFlight++;
      void this.commitGroup(group).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  /** Atomic requests commit alone, so their rollback cannot take other requests' rows with it. */
  private takeGroup(): Pending[] {
    const first = this.queue.shift()!;
    const group = [first];
    let rows = first.events.length;
    if (!first.atomic) {
      while (this.queue.length > 0 && !this.queue[0]!.atomic && rows + this.queue[0]!.events.length <= this.options.maxRowsPerTransaction) {
        const next = this.queue.shift()!;
        group.push(next);
        rows += next.events.length;
      }
    }
    this.queuedRows -= rows;
    return group;
  }

  private async commitGroup(group: Pending[]): Promise<void> {
    try {
      const events = group.flatMap((p) => p.events);
      const stopTimer = this.metrics.seconds.startTimer();
      const outcomes = await this.commitWithRetry(events, group[0]!.atomic);
      stopTimer();
      this.metrics.rows.observe(events.length);
      // Counted per status, not per event: a labelled inc() costs a label lookup each time.
      let accepted = 0;
      let duplicate = 0;
      for (const o of outcomes) {
        if (o.status === 'accepted') accepted++;
        else if (o.status === 'duplicate') duplicate++;
      }
      const conflict = outcomes.length - accepted - duplicate;
      if (accepted) this.metrics.events.inc({ status: 'accepted' }, accepted);
      if (duplicate) this.metrics.events.inc({ status: 'duplicate' }, duplicate);
      if (conflict) this.metrics.events.inc({ status: 'conflict' }, conflict);
      let offset = 0;
      for (const pending of group) {
        const own = outcomes.slice(offset, offset + pending.events.length);
        offset += pending.events.length;
        const failed = pending.atomic && own.some((o) => o.status === 'conflict');
        pending.resolve({ outcomes: own, rolledBack: failed });
      }
    } catch (err) {
      // The database being unreachable is nobody's rows' fault: everyone gets the 503 now.
      if (group.length === 1 || isConnectionError(err)) {
        for (const pending of group) pending.reject(err);
        return;
      }
      // One request's rows broke the shared transaction: retry each alone so only it fails.
      await Promise.all(group.map((p) => this.commitGroup([p])));
    }
  }

  /**
   * Deadlocks and serialization failures are retried, and so is a connection lost mid-way, once,
   * on a fresh one (a backend terminated by a failover or an admin, while the server still runs).
   * If the lost transaction had in fact committed, the retry finds its rows and reports them as
   * duplicates: stored once either way. No connection at all is not retried: the server is away.
   */
  private async commitWithRetry(events: PreparedEvent[], atomic: boolean): Promise<WriteOutcome[]> {
    let reconnected = false;
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      try {
        return await this.commit(client, events, atomic);
      } catch (err) {
        if (isConnectionError(err) && !reconnected) {
          reconnected = true;
          continue;
        }
        const code = (err as { code?: string }).code;
        if (attempt >= MAX_ATTEMPTS || !code || !RETRYABLE.has(code)) throw err;
      }
    }
  }

  /** One transaction on `client`, which it releases. */
  private async commit(client: PoolClient, events: PreparedEvent[], atomic: boolean): Promise<WriteOutcome[]> {
    let unique: PreparedEvent[];
    let uniqueIndex: Int32Array;
    let uniqueOutcomes: WriteOutcome[];
    try {
      await this.shortIds.load(client, events);
      // Repeats of a key within the group go to the database once; the rest are judged against it.
      // In key order, whichever path stores them: two groups holding the same new keys at once (a
      // client retrying while its first attempt is still in flight) then meet on the first shared
      // key, the later waiting for the earlier's commit, instead of deadlocking until deadlock_timeout.
      ({ unique, uniqueIndex } = uniqueInKeyOrder(events, this.shortIds));
      if (await this.storeDirect(client, unique)) {
        this.metrics.paths.inc({ path: 'direct' });
        uniqueOutcomes = new Array<WriteOutcome>(unique.length).fill(ACCEPTED);
      } else {
        this.metrics.paths.inc({ path: 'staging' });
        // Some key is already stored, so nothing of the group was: start over through the staging table.
        await client.query('rollback');
        if (!this.staged.has(client)) {
          // Outside the transaction, so that a rollback cannot take the table with it.
          await client.query(STAGE_TABLE_SQL);
          this.staged.add(client);
        }
        await client.query('begin');
        uniqueOutcomes = await this.store(client, unique);
        const failed = uniqueOutcomes.some((o) => o.status === 'conflict');
        await client.query(atomic && failed ? 'rollback' : 'commit');
      }
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      client.release(true);
      throw err;
    }
    client.release();

    return events.map((e, i) => {
      const at = uniqueIndex[i]!;
      const first = uniqueOutcomes[at]!;
      if (unique[at] === e) return first;
      return first.status !== 'conflict' && samePayload(unique[at]!, e) ? DUPLICATE : CONFLICT;
    });
  }

  /**
   * The fast path: every event (unique by key within `events`) stored and counted and the
   * transaction committed, and true; or false when some key is already stored, leaving the
   * transaction aborted. One simple-query message carries BEGIN, the COPY, the counters' upsert
   * and COMMIT: two round trips instead of five. Each round trip waits for the API's event loop,
   * busy with other requests' JSON; while it waits, the transaction holds its counter rows, which
   * every concurrent transaction of the same customers queues on.
   */
  private async storeDirect(client: PoolClient, events: PreparedEvent[]): Promise<boolean> {
    // Events come in customer order: most share the previous event's counter, found without a lookup.
    const groupOf = new Map<string, number>();
    const customerIds: string[] = [];
    const meterIds: string[] = [];
    const days: string[] = [];
    const counts: number[] = [];
    const sums: DecimalSum[] = [];
    let previous: PreparedEvent | undefined;
    let k = -1;
    let text = '';
    for (const e of events) {
      text += copyLine(e, this.shortIds);
      if (
        previous === undefined ||
        e.customerId !== previous.customerId ||
        e.meterId !== previous.meterId ||
        e.eventTime !== previous.eventTime
      ) {
        const day = e.eventTime.slice(0, 10);
        const key = `${e.customerId}${e.meterId}${day}`;
        const found = groupOf.get(key);
        if (found === undefined) {
          k = customerIds.length;
          groupOf.set(key, k);
          customerIds.push(e.customerId);
          meterIds.push(e.meterId);
          days.push(day);
          counts.push(0);
          sums.push(new DecimalSum());
        } else k = found;
      }
      previous = e;
      counts[k]!++;
      if (e.value !== null) sums[k]!.add(e.value);
    }
    const sql = `begin; ${USAGE_EVENTS_COPY_SQL}; ${directCountersSql(customerIds, meterIds, days, counts, sums.map(String))}; commit`;
    try {
      await pipeline(Readable.from([text]), client.query(copyFrom(sql)));
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) return false;
      throw err;
    }
    return true;
  }

  /** The staging path: each event's outcome, telling those already stored apart as duplicates or conflicts. */
  private async store(client: PoolClient, events: PreparedEvent[]): Promise<WriteOutcome[]> {
    let text = '';
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      text += `${i}\t${e.customerId}\t${e.meterId}\t${copyLine(e, this.shortIds)}`;
    }
    await pipeline(Readable.from([text]), client.query(copyFrom(STAGE_COPY_SQL)));
    const { rows } = await client.query<{ ord: number }>(INSERT_SQL);
    // The events of a group are unique by key, so as many rows inserted as events means all of them were.
    if (rows.length === events.length) return new Array<WriteOutcome>(events.length).fill(ACCEPTED);
    const outcomes: Array<WriteOutcome | undefined> = new Array(events.length);
    for (const r of rows) outcomes[r.ord] = ACCEPTED;
    const missing: number[] = [];
    for (let i = 0; i < events.length; i++) if (!outcomes[i]) missing.push(i);
    if (missing.length > 0) {
      const found = await client.query<{ ord: number; stored: boolean; same: boolean | null }>(CLASSIFY_SQL, [missing]);
      for (const row of found.rows) {
        if (!row.stored) throw new Error(`event ${events[row.ord]!.eventId} was neither inserted nor found`);
        else outcomes[row.ord] = row.same ? DUPLICATE : CONFLICT;
      }
    }
    return outcomes.map((o, i) => {
      if (!o) throw new Error(`no outcome for event ${events[i]!.eventId}`);
      return o;
    });
  }
}
