-- Up Migration

-- usage_counters keeps what is read: event_count and value_sum (src/metering/usage-totals.ts: the
-- open period's quotas and price for count and sum meters). value_max and the latest_* columns
-- were kept up to date by every ingest transaction and read by nothing: max and latest meters are
-- invoiced and queried from usage_events. Choosing the latest event meant sending every event id
-- at a group's latest time to PostgreSQL and sorting them in the database's collation, on every
-- group commit (issue 17: the ingest writer's PostgreSQL CPU per event).
ALTER TABLE usage_counters
  DROP COLUMN value_max,
  DROP COLUMN latest_value,
  DROP COLUMN latest_time,
  DROP COLUMN latest_event_id;

-- Down Migration

-- Recomputed from the stored events (an archived period's days keep NULL: its events are gone).
ALTER TABLE usage_counters
  ADD COLUMN value_max numeric,
  ADD COLUMN latest_value numeric,
  ADD COLUMN latest_time timestamptz,
  ADD COLUMN latest_event_id text;
UPDATE usage_counters c
   SET value_max = r.value_max, latest_value = r.latest_value, latest_time = r.latest_time, latest_event_id = r.latest_event_id
  FROM (SELECT e.customer_short_id, e.meter_short_id, (e.event_time AT TIME ZONE 'UTC')::date AS day, max(e.value) AS value_max,
               (array_agg(e.value ORDER BY e.event_time DESC, e.event_id DESC))[1] AS latest_value, max(e.event_time) AS latest_time,
               (array_agg(e.event_id ORDER BY e.event_time DESC, e.event_id DESC))[1] AS latest_event_id
          FROM usage_events e GROUP BY 1, 2, 3) r
  JOIN customers cu ON cu.short_id = r.customer_short_id
  JOIN meters m ON m.short_id = r.meter_short_id
 WHERE c.customer_id = cu.id AND c.meter_id = m.id AND c.day = r.day;
