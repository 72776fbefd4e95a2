-- Up Migration

-- The source of truth for usage. The primary key is the idempotency key: a retried or
-- concurrently repeated event hits it inside the inserting transaction, so it is stored and
-- counted once. A retry of the same event (duplicate) is told from a different event reusing the
-- id (conflict) by comparing meter, properties (jsonb equality ignores key order) and, when the
-- client sent one, the timestamp; this only runs for the rare rows that hit the key.
--
-- Sized for tens of millions of rows a month: two B-trees only (the key, and the one access
-- path every reader uses: customer + meter + time range, for usage queries, invoices and
-- reconciliation). Not partitioned by time: a partitioned table's unique key must include the
-- partition column, and deduplication must hold across all time, so (customer, event id) could
-- no longer be enforced by the database. Old rows can later move to an archive table once their
-- invoices are final.
--
-- No foreign keys here: their per-row triggers were 40% of the insert's cost. Integrity holds
-- without them: the insert resolves customer_id by joining customers in the same statement,
-- meter_id comes from the meters table, and neither customers nor meters can be deleted or
-- change id (triggers below).
CREATE TABLE usage_events (
  customer_id  uuid NOT NULL,
  event_id     text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 128),
  meter_id     uuid NOT NULL,
  event_time   timestamptz NOT NULL,
  received_at  timestamptz NOT NULL,
  -- The meter's exact value: NULL for count meters (each event counts 1) and unique_count meters
  -- (the distinct key stays in properties).
  value        numeric CHECK (value >= 0),
  properties   jsonb NOT NULL,
  -- False when the server filled in event_time: a retry without a timestamp is still a duplicate.
  timestamp_provided boolean NOT NULL,
  -- Arrived more than the allowed lateness after it happened; the invoicing policy decides.
  late         boolean NOT NULL,
  PRIMARY KEY (customer_id, event_id)
);
CREATE INDEX usage_events_customer_meter_time_idx ON usage_events (customer_id, meter_id, event_time);

-- Real-time counters per customer, meter and UTC day, updated in the inserting transaction only
-- for newly stored events. Days add up to any billing period whatever its anchor; limits and
-- dashboards read these, invoices recompute from usage_events.
CREATE TABLE usage_counters (
  customer_id     uuid NOT NULL,
  meter_id        uuid NOT NULL,
  day             date NOT NULL,
  event_count     bigint NOT NULL,
  value_sum       numeric NOT NULL,
  value_max       numeric,
  latest_value    numeric,
  latest_time     timestamptz,
  latest_event_id text,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer_id, meter_id, day)
);

-- Usage refers to customers and meters forever: they may be renamed, never removed or re-keyed.
CREATE FUNCTION refuse_removal() RETURNS trigger LANGUAGE plpgsql AS $$
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

-- Down Migration
DROP TRIGGER meters_are_permanent ON meters;
DROP TRIGGER customers_are_permanent ON customers;
DROP FUNCTION refuse_removal();
DROP TABLE usage_counters;
DROP TABLE usage_events;
