-- Up Migration

-- Customers are addressed by the caller's own id (external_id); our uuid never leaves the database
-- except as an opaque reference.
CREATE TABLE customers (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  external_id text NOT NULL UNIQUE CHECK (length(external_id) BETWEEN 1 AND 128),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
  currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TYPE meter_aggregation AS ENUM ('count', 'sum', 'max', 'unique_count', 'latest');

-- A meter turns events of one type into a quantity. One meter per event type: an event's type
-- names the meter it feeds, so every stored event has exactly one meter and one exact value
-- (Lago's billable-metric model). value_property names the event property that carries the value
-- (required for every aggregation except count); filter is an optional equality match on event
-- properties: events of the type that do not match are rejected with a reason, never dropped.
CREATE TABLE meters (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  code           text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
  event_type     text NOT NULL UNIQUE CHECK (length(event_type) BETWEEN 1 AND 128),
  aggregation    meter_aggregation NOT NULL,
  value_property text CHECK (value_property IS NULL OR length(value_property) BETWEEN 1 AND 128),
  filter         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(filter) = 'object'),
  created_at     timestamptz NOT NULL DEFAULT now(),
  CHECK ((aggregation = 'count') = (value_property IS NULL))
);

-- Down Migration
DROP TABLE meters;
DROP TYPE meter_aggregation;
DROP TABLE customers;
