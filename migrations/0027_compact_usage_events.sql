-- Up Migration

-- usage_events stores each event in fewer bytes (issue 17: a year of a large customer base is
-- billions of rows). Measured on the bench's event shape (`npm run bench:ingest`): 235 bytes per
-- stored event before, table and indexes; the figures after are in the README ("Growth").
--
-- 1. The customer and the meter by a 4-byte number instead of a 16-byte uuid: 24 bytes less per
--    row, and 12 less in each of the two indexes, which both lead with the customer. Customers and
--    meters get `short_id`, an identity that, like their uuid, never changes (trigger below): the
--    ingest writer caches it forever. The uuid stays their id everywhere else; readers of
--    usage_events join through short_id.
-- 2. properties as json, not jsonb: the text the API stored (JSON.stringify of the parsed event),
--    checked for validity, not rebuilt into jsonb's binary tree. 8 bytes less for the bench's two
--    properties (jsonb spends 8 bytes per key and value on its offsets), and COPY costs
--    PostgreSQL less CPU per row. Nothing queried it with jsonb operators: readers take one key
--    (->>, the same on json), and the ingest writer's duplicate check compares the two as jsonb,
--    so key order still does not matter there.
--
-- Converted in place like 0013: a new partitioned table, every row moved, the old table dropped,
-- in the migrator's single transaction (readers and the writer wait on the lock until it commits).

ALTER TABLE customers ADD COLUMN short_id int4 GENERATED ALWAYS AS IDENTITY CONSTRAINT customers_short_id_key UNIQUE;
ALTER TABLE meters ADD COLUMN short_id int4 GENERATED ALWAYS AS IDENTITY CONSTRAINT meters_short_id_key UNIQUE;

-- usage_events refers to customers and meters by short_id from now on: it may no more change than id.
CREATE OR REPLACE FUNCTION refuse_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR NEW.id <> OLD.id OR NEW.short_id <> OLD.short_id THEN
    RAISE EXCEPTION '% rows cannot be deleted or change id: usage events refer to them', TG_TABLE_NAME
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;
DROP TRIGGER customers_are_permanent ON customers;
DROP TRIGGER meters_are_permanent ON meters;
CREATE TRIGGER customers_are_permanent BEFORE DELETE OR UPDATE OF id, short_id ON customers
  FOR EACH ROW EXECUTE FUNCTION refuse_removal();
CREATE TRIGGER meters_are_permanent BEFORE DELETE OR UPDATE OF id, short_id ON meters
  FOR EACH ROW EXECUTE FUNCTION refuse_removal();

ALTER TABLE usage_events RENAME TO usage_events_wide;
ALTER TABLE usage_events_wide RENAME CONSTRAINT usage_events_pkey TO usage_events_wide_pkey;
ALTER INDEX usage_events_customer_meter_time_idx RENAME TO usage_events_wide_customer_meter_time_idx;

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'usage_events_wide'::regclass AND NOT tgisinternal)
     OR EXISTS (SELECT 1 FROM pg_rules WHERE tablename = 'usage_events_wide') THEN
    RAISE EXCEPTION 'usage_events has triggers or rules: carry them over in this migration first';
  END IF;
END $$;

-- Fixed-width columns first, widest alignment first: no padding inside a row.
CREATE TABLE usage_events (
  customer_short_id  int4 NOT NULL,
  meter_short_id     int4 NOT NULL,
  event_time         timestamptz NOT NULL,
  received_at        timestamptz NOT NULL,
  timestamp_provided boolean NOT NULL,
  late               boolean NOT NULL,
  event_id           text NOT NULL CONSTRAINT usage_events_event_id_check CHECK (length(event_id) BETWEEN 1 AND 128),
  value              numeric CONSTRAINT usage_events_value_check CHECK (value >= 0),
  properties         json NOT NULL
) PARTITION BY HASH (customer_short_id);

DO $$
BEGIN
  FOR r IN 0..15 LOOP
    EXECUTE format('ALTER TABLE usage_events_p%s RENAME TO usage_events_wide_p%s', lpad(r::text, 2, '0'), lpad(r::text, 2, '0'));
    EXECUTE format('CREATE TABLE usage_events_p%s PARTITION OF usage_events FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
                   lpad(r::text, 2, '0'), r);
  END LOOP;
END $$;

INSERT INTO usage_events (customer_short_id, meter_short_id, event_time, received_at, timestamp_provided, late, event_id, value, properties)
SELECT c.short_id, m.short_id, e.event_time, e.received_at, e.timestamp_provided, e.late, e.event_id, e.value, e.properties::json
  FROM usage_events_wide e
  JOIN customers c ON c.id = e.customer_id
  JOIN meters m ON m.id = e.meter_id;

ALTER TABLE usage_events ADD CONSTRAINT usage_events_pkey PRIMARY KEY (customer_short_id, event_id);
CREATE INDEX usage_events_customer_meter_time_idx ON usage_events (customer_short_id, meter_short_id, event_time);

DO $$
DECLARE
  g record;
BEGIN
  FOR g IN SELECT grantee, privilege_type, is_grantable FROM information_schema.role_table_grants
            WHERE table_schema = current_schema() AND table_name = 'usage_events_wide'
              AND grantee <> (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'usage_events_wide'::regclass)
  LOOP
    EXECUTE format('GRANT %s ON usage_events TO %s%s', g.privilege_type,
                   CASE WHEN g.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(g.grantee) END,
                   CASE WHEN g.is_grantable = 'YES' THEN ' WITH GRANT OPTION' ELSE '' END);
  END LOOP;
END $$;

-- Every event has its customer and meter (neither can be deleted), so none may be lost in the join.
DO $$
BEGIN
  IF (SELECT count(*) FROM usage_events) <> (SELECT count(*) FROM usage_events_wide) THEN
    RAISE EXCEPTION 'usage_events: row counts differ after the move';
  END IF;
END $$;

DROP TABLE usage_events_wide;
ANALYZE usage_events;

-- Down Migration

ALTER TABLE usage_events RENAME TO usage_events_compact;
ALTER TABLE usage_events_compact RENAME CONSTRAINT usage_events_pkey TO usage_events_compact_pkey;
ALTER INDEX usage_events_customer_meter_time_idx RENAME TO usage_events_compact_customer_meter_time_idx;

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
    EXECUTE format('ALTER TABLE usage_events_p%s RENAME TO usage_events_compact_p%s', lpad(r::text, 2, '0'), lpad(r::text, 2, '0'));
    EXECUTE format('CREATE TABLE usage_events_p%s PARTITION OF usage_events FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
                   lpad(r::text, 2, '0'), r);
  END LOOP;
END $$;

INSERT INTO usage_events (customer_id, meter_id, event_time, received_at, timestamp_provided, late, event_id, value, properties)
SELECT c.id, m.id, e.event_time, e.received_at, e.timestamp_provided, e.late, e.event_id, e.value, e.properties::jsonb
  FROM usage_events_compact e
  JOIN customers c ON c.short_id = e.customer_short_id
  JOIN meters m ON m.short_id = e.meter_short_id;

ALTER TABLE usage_events ADD CONSTRAINT usage_events_pkey PRIMARY KEY (customer_id, event_id);
CREATE INDEX usage_events_customer_meter_time_idx ON usage_events (customer_id, meter_id, event_time);

DO $$
DECLARE
  g record;
BEGIN
  FOR g IN SELECT grantee, privilege_type, is_grantable FROM information_schema.role_table_grants
            WHERE table_schema = current_schema() AND table_name = 'usage_events_compact'
              AND grantee <> (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'usage_events_compact'::regclass)
  LOOP
    EXECUTE format('GRANT %s ON usage_events TO %s%s', g.privilege_type,
                   CASE WHEN g.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(g.grantee) END,
                   CASE WHEN g.is_grantable = 'YES' THEN ' WITH GRANT OPTION' ELSE '' END);
  END LOOP;
END $$;

DROP TABLE usage_events_compact;

DROP TRIGGER customers_are_permanent ON customers;
DROP TRIGGER meters_are_permanent ON meters;
CREATE OR REPLACE FUNCTION refuse_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR NEW.id <> OLD.id THEN
    RAISE EXCEPTION '% rows cannot be deleted or change id: usage events refer to them', TG_TABLE_NAME
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER customers_are_permanent BEFORE DELETE OR UPDATE OF id ON customers
  FOR EACH ROW EXECUTE FUNCTION refuse_removal();
CREATE TRIGGER meters_are_permanent BEFORE DELETE OR UPDATE OF id ON meters
  FOR EACH ROW EXECUTE FUNCTION refuse_removal();
ALTER TABLE meters DROP COLUMN short_id;
ALTER TABLE customers DROP COLUMN short_id;
