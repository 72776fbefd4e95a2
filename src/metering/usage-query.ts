import type { Queryable } from '../db/transaction';
import type { Aggregation, Meter } from '../domain/metering/meter';

export const granularities = ['minute', 'hour', 'day'] as const;
export type Granularity = (typeof granularities)[number];

/** Each granularity's bucket, as a Postgres interval and in milliseconds. */
const buckets: Record<Granularity, { step: string; ms: number }> = {
  minute: { step: '1 minute', ms: 60_000 },
  hour: { step: '1 hour', ms: 3_600_000 },
  day: { step: '1 day', ms: 86_400_000 },
};

export interface UsageQuery {
  customerId: string;
  meter: Meter;
  /** Half-open range [from, to). */
  from: Date;
  to: Date;
  granularity?: Granularity;
}

export interface UsageBucket {
  start: string;
  end: string;
  value: string | null;
}

export interface Usage {
  value: string | null;
  eventCount: string;
  buckets?: UsageBucket[];
}

/** The aggregate over `usage_events` rows aliased `e`: exact, as NUMERIC text. */
const aggregateSql: Record<Aggregation, string> = {
  count: 'count(*)::text',
  sum: 'coalesce(sum(e.value), 0)::text',
  max: 'max(e.value)::text',
  unique_count: 'count(distinct e.properties ->> $5)::text',
  latest: '(array_agg(e.value order by e.event_time desc, e.event_id desc))[1]::text',
};

/**
 * Usage of one meter by one customer over [from, to), computed from the stored events (the
 * source of truth), optionally in UTC-aligned buckets of a minute, an hour or a day.
 */
export async function queryUsage(pool: Queryable, q: UsageQuery): Promise<Usage> {
  const agg = aggregateSql[q.meter.aggregation];
  const params: unknown[] = [q.customerId, q.meter.id, q.from.toISOString(), q.to.toISOString()];
  if (q.meter.aggregation === 'unique_count') params.push(q.meter.valueProperty);
  const where =
    'e.customer_short_id = (select short_id from customers where id = $1) and e.meter_short_id = (select short_id from meters where id = $2) and e.event_time >= $3 and e.event_time < $4';
  const total = await pool.query<{ value: string | null; n: string }>(
    `select ${agg} as value, count(*)::text as n from usage_events e where ${where}`,
    params,
  );
  const usage: Usage = { value: total.rows[0]!.value, eventCount: total.rows[0]!.n };
  if (!q.granularity) return usage;

  const { step, ms: stepMs } = buckets[q.granularity];
  const { rows } = await pool.query<{ start: Date; value: string | null }>(
    `with b as (
       select date_bin('${step}', e.event_time, timestamptz '2000-01-01 00:00:00+00') as start, ${agg} as value
         from usage_events e where ${where} group by 1
     )
     select g.start, b.value
       from generate_series(date_bin('${step}', $3::timestamptz, timestamptz '2000-01-01 00:00:00+00'), $4::timestamptz - interval '1 microsecond', interval '${step}') as g(start)
       left join b on b.start = g.start order by g.start`,
    params,
  );
  const empty = q.meter.aggregation === 'count' || q.meter.aggregation === 'sum' || q.meter.aggregation === 'unique_count' ? '0' : null;
  usage.buckets = rows.map((r) => ({
    start: new Date(Math.max(r.start.getTime(), q.from.getTime())).toISOString(),
    end: new Date(Math.min(r.start.getTime() + stepMs, q.to.getTime())).toISOString(),
    value: r.value ?? empty,
  }));
  return usage;
}
