-- Up Migration

-- usage_events becomes a table partitioned by HASH (customer_id), converted in place: a new
-- partitioned table is created, every row moved into it, and it takes the old table's name, its
-- constraints, indexes and grants. Runs in the migrator's single transaction: readers and the
-- writer wait on the ACCESS EXCLUSIVE lock until it commits (minutes per hundred million rows).
--
-- Why hash of customer: the partition key is part of every unique key, and customer_id is already
-- the first column of the idempotency key (customer_id, event_id), so that key stays unique across
-- all time, enforced by the database, not per month. Every reader (usage queries, invoices,
-- reconciliation) filters on one customer (or joins on it), so a query touches one partition and
-- its (customer_id, meter_id, event_time) index; the writer's INSERT … ON CONFLICT is unchanged:
-- the row is routed by its customer and the conflict is checked on that partition's key.
--
-- Why 16: the point is smaller B-trees per partition (a year at tens of millions of rows a month
-- is some 500 M rows; 16 partitions keep each one's indexes in the low GBs, so a customer's hot
-- index pages and VACUUM of one partition stay cheap), and the modulus can later be raised by
-- splitting each partition in two (16 → 32 → 64), which requires a power of two to start with.
-- More partitions cost planning time on queries that do not name a customer, and a group-commit
-- batch of 5,000 events across 100 customers touches every partition anyway: 16 keeps that small.
-- It is also the usual Citus shard count per node range, see the README ("Growth").
--
-- Column order: fixed-width columns first (uuids, timestamps, booleans), then the variable ones,
-- which avoids alignment padding in each row. Readers and writers name their columns.

ALTER TABLE usage_events RENAME TO usage_events_unpartitioned;
ALTER TABLE usage_events_unpartitioned RENAME CONSTRAINT usage_events_pkey TO usage_events_unpartitioned_pkey;
ALTER INDEX usage_events_customer_meter_time_idx RENAME TO usage_events_unpartitioned_customer_meter_time_idx;

-- The table had no triggers and no rules when this was written; refuse to silently drop any added since.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'usage_events_unpartitioned'::regclass AND NOT tgisinternal)
     OR EXISTS (SELECT 1 FROM pg_rules WHERE tablename = 'usage_events_unpartitioned') THEN
    RAISE EXCEPTION 'usage_events has triggers or rules: carry them over in this migration first';
  END IF;
END $$;

CREATE TABLE usage_events (
  customer_id        uuid NOT NULL,
  meter_id           uuid NOT NULL,
  event_time         timestamptz NOT NULL,
  received_at        timestamptz NOT NULL,
  timestamp_provided boolean NOT NULL,
  late               boolean NOT NULL,
  event_id           text NOT NULL CONSTRAINT usage_events_event_id_check CHECK (length(event_id) BETWEEN 1 AND 128),
  value              numeric CONSTRAINT usage_events_value_check CHECK (value >= 0),
  properties         jsonb NOT NULL
) PARTITION BY HASH (customer_id);

DO $$
BEGIN
  FOR r IN 0..15 LOOP
    EXECUTE format('CREATE TABLE usage_events_p%s PARTITION OF usage_events FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
                   lpad(r::text, 2, '0'), r);
  END LOOP;
END $$;

-- Rows first, indexes after: one sorted build per index instead of row-by-row B-tree inserts.
INSERT INTO usage_events (customer_id, meter_id, event_time, received_at, timestamp_provided, late, event_id, value, properties)
SELECT customer_id, meter_id, event_time, received_at, timestamp_provided, late, event_id, value, properties
  FROM usage_events_unpartitioned;

ALTER TABLE usage_events ADD CONSTRAINT usage_events_pkey PRIMARY KEY (customer_id, event_id);
CREATE INDEX usage_events_customer_meter_time_idx ON usage_events (customer_id, meter_id, event_time);

-- Grants (none in this repository's migrations; an operator may have added some): the same
-- privileges to the same roles. Partitions are reached through the parent, whose grants count.
DO $$
DECLARE
  g record;
BEGIN
  FOR g IN SELECT grantee, privilege_type, is_grantable FROM information_schema.role_table_grants
            WHERE table_schema = current_schema() AND table_name = 'usage_events_unpartitioned'
              AND grantee <> (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'usage_events_unpartitioned'::regclass)
  LOOP
    EXECUTE format('GRANT %s ON usage_events TO %s%s', g.privilege_type,
                   CASE WHEN g.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(g.grantee) END,
                   CASE WHEN g.is_grantable = 'YES' THEN ' WITH GRANT OPTION' ELSE '' END);
  END LOOP;
END $$;

DO $$
BEGIN
  IF (SELECT count(*) FROM usage_events) <> (SELECT count(*) FROM usage_events_unpartitioned) THEN
    RAISE EXCEPTION 'usage_events: row counts differ after the move';
  END IF;
END $$;

DROP TABLE usage_events_unpartitioned;
ANALYZE usage_events;

-- Down Migration

ALTER TABLE usage_events RENAME TO usage_events_partitioned;
ALTER TABLE usage_events_partitioned RENAME CONSTRAINT usage_events_pkey TO usage_events_partitioned_pkey;
ALTER INDEX usage_events_customer_meter_time_idx RENAME TO usage_events_partitioned_customer_meter_time_idx;

CREATE TABLE usage_events (
  customer_id  uuid NOT NULL,
  event_id     text NOT NULL CONSTRAINT usage_events_event_id_check CHECK (length(event_id) BETWEEN 1 AND 128),
  meter_id     uuid NOT NULL,
  event_time   timestamptz NOT NULL,
  received_at  timestamptz NOT NULL,
  value        numeric CONSTRAINT usage_events_value_check CHECK (value >= 0),
  properties   jsonb NOT NULL,
  timestamp_provided boolean NOT NULL,
  late         boolean NOT NULL
);
INSERT INTO usage_events (customer_id, event_id, meter_id, event_time, received_at, value, properties, timestamp_provided, late)
SELECT customer_id, event_id, meter_id, event_time, received_at, value, properties, timestamp_provided, late
  FROM usage_events_partitioned;
ALTER TABLE usage_events ADD CONSTRAINT usage_events_pkey PRIMARY KEY (customer_id, event_id);
CREATE INDEX usage_events_customer_meter_time_idx ON usage_events (customer_id, meter_id, event_time);

DO $$
DECLARE
  g record;
BEGIN
  FOR g IN SELECT grantee, privilege_type, is_grantable FROM information_schema.role_table_grants
            WHERE table_schema = current_schema() AND table_name = 'usage_events_partitioned'
              AND grantee <> (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'usage_events_partitioned'::regclass)
  LOOP
    EXECUTE format('GRANT %s ON usage_events TO %s%s', g.privilege_type,
                   CASE WHEN g.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(g.grantee) END,
                   CASE WHEN g.is_grantable = 'YES' THEN ' WITH GRANT OPTION' ELSE '' END);
  END LOOP;
END $$;

DROP TABLE usage_events_partitioned;
