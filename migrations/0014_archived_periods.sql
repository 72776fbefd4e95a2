-- Up Migration

-- Raw events of billed periods moved out of usage_events into archive files (npx meterflow events
-- archive, src/retention/). One row per customer and period, written in the same transaction that
-- deletes the period's events, so a period is either still in usage_events or recorded here with
-- the file that holds its events, never both or neither. Readers that recompute from raw events
-- (reconciliation, late-usage adjustments) consult this table instead of finding "no usage".
CREATE TABLE archived_periods (
  customer_id   uuid NOT NULL REFERENCES customers (id),
  period_start  timestamptz NOT NULL,
  period_end    timestamptz NOT NULL CHECK (period_end >= period_start),
  invoice_id    uuid NOT NULL UNIQUE REFERENCES invoices (id),
  -- Where the file was written (as the archiving host saw it) and its name there.
  directory     text NOT NULL,
  file          text NOT NULL,
  event_count   bigint NOT NULL CHECK (event_count >= 0),
  sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  archived_at   timestamptz NOT NULL,
  PRIMARY KEY (customer_id, period_start)
);
CREATE INDEX archived_periods_directory_idx ON archived_periods (directory);

-- Down Migration
DROP TABLE archived_periods;
