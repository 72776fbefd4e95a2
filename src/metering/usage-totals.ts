import type { Queryable } from '../db/transaction';

const DAY_MS = 86_400_000;

/**
 * A customer's usage of some meters in one billing period [start, end), as quota tracking counts
 * it: a count meter's number of events, a sum meter's sum of values. Other aggregations (max,
 * unique_count, latest) do not add up from reported quantities, so they have no total here, and
 * neither has a code that names no meter. Exact decimal strings.
 */
export interface UsageTotalsQuery {
  customerId: string;
  /** Meter codes. */
  meters: string[];
  /** Half-open range [start, end): any instant, not only midnight. */
  start: Date;
  end: Date;
}

/**
 * Full UTC days come from the real-time counters (`usage_counters`, one row per customer, meter
 * and day, updated in the ingest transaction); the partial days at the period's edges are summed
 * from `usage_events` through its (customer_id, meter_id, event_time) index. One statement, so
 * the counters and the events are read from the same snapshot, and exact for any anchor.
 */
const TOTALS_SQL = `
select m.code,
       case m.aggregation when 'count' then (coalesce(d.events, 0) + coalesce(h.events, 0) + coalesce(t.events, 0))::text
                          else (coalesce(d.total, 0) + coalesce(h.total, 0) + coalesce(t.total, 0))::text end as total
  from meters m
  left join lateral (
    select sum(c.event_count) as events, sum(c.value_sum) as total from usage_counters c
     where c.customer_id = $1 and c.meter_id = m.id and c.day >= $3::date and c.day < $4::date
  ) d on true
  left join lateral (
    select count(*) as events, sum(e.value) as total from usage_events e
     where e.customer_short_id = (select short_id from customers where id = $1) and e.meter_short_id = m.short_id and e.event_time >= $5 and e.event_time < $6
  ) h on true
  left join lateral (
    select count(*) as events, sum(e.value) as total from usage_events e
     where e.customer_short_id = (select short_id from customers where id = $1) and e.meter_short_id = m.short_id and e.event_time >= $7 and e.event_time < $8
  ) t on true
 where m.code = any($2::text[]) and m.aggregation in ('count', 'sum')`;

/** Meter code → total, for the meters that add up. */
export async function readUsageTotals(db: Queryable, query: UsageTotalsQuery): Promise<Record<string, string>> {
  const start = query.start.getTime();
  const end = query.end.getTime();
  if (!(end >= start)) throw new RangeError(`the period [${query.start.toISOString()}, ${query.end.toISOString()}) ends before it starts`);
  if (query.meters.length === 0) return {};
  // Full days: [first midnight at or after start, last midnight at or before end).
  const firstDay = Math.ceil(start / DAY_MS) * DAY_MS;
  const lastDay = Math.floor(end / DAY_MS) * DAY_MS;
  const days = firstDay < lastDay;
  const iso = (ms: number) => new Date(ms).toISOString();
  const { rows } = await db.query<{ code: string; total: string }>(TOTALS_SQL, [
    query.customerId,
    query.meters,
    iso(days ? firstDay : start).slice(0, 10),
    iso(days ? lastDay : start).slice(0, 10),
    // Head: before the first full day (or the whole period when it holds none); tail: after the last.
    iso(start),
    iso(days ? firstDay : end),
    iso(days ? lastDay : end),
    iso(end),
  ]);
  return Object.fromEntries(rows.map((r) => [r.code, r.total]));
}
