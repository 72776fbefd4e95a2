-- Up Migration

-- A billing anchor other than the start (Stripe's billing_cycle_anchor): periods are derived from
-- it, billing begins at the start, so a start between two of its boundaries makes a first period
-- cut short at the start, with prorated fixed fees (src/domain/billing-schedule.ts). NULL: the
-- start anchors every period, as for every subscription created before this column.
ALTER TABLE subscriptions ADD COLUMN billing_anchor timestamptz;

-- Down Migration
ALTER TABLE subscriptions DROP COLUMN billing_anchor;
