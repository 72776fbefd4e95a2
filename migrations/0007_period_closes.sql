-- Up Migration

-- One row per closed billing period, written by the billing workflow's close activity under the
-- natural key (subscription, period start), so a retried close changes nothing. The usage here is
-- recomputed from usage_events for [period_start, period_end), never taken from the real-time
-- counters; invoicing prices it.
CREATE TABLE period_closes (
  subscription_id uuid NOT NULL REFERENCES subscriptions (id),
  period_start    timestamptz NOT NULL,
  period_end      timestamptz NOT NULL CHECK (period_end >= period_start),
  customer_id     uuid NOT NULL REFERENCES customers (id),
  plan_code       text NOT NULL REFERENCES plans (code),
  usage           jsonb NOT NULL,
  closed_at       timestamptz NOT NULL,
  PRIMARY KEY (subscription_id, period_start)
);

-- Down Migration
DROP TABLE period_closes;
