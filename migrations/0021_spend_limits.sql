-- Up Migration

-- A subscription may cap what one billing period of usage costs (src/domain/spend-limit.ts,
-- SpendCapSchema: { amount, grace_period? } in the plan's currency, validated at the edge). NULL:
-- no cap. Changes are audited (subscription.spend_cap_changed).
ALTER TABLE subscriptions ADD COLUMN spend_cap jsonb CHECK (spend_cap IS NULL OR jsonb_typeof(spend_cap) = 'object');

-- The billing workflow prices the open period through an activity and, per charged meter,
-- publishes its runway (the usage at which the period's priced usage reaches the cap, the other
-- meters staying put) with the rest of the quota state, and blocks the charged meters once the
-- cap is reached past its grace period. A spend block is its own flag beside the hard-limit
-- block: lifting one never lifts the other. API processes hold both in memory (same NOTIFY).
ALTER TABLE entitlements
  ADD COLUMN spend_blocked boolean NOT NULL DEFAULT false,
  ADD COLUMN spend_runway  numeric CHECK (spend_runway >= 0);

CREATE OR REPLACE FUNCTION entitlements_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('entitlements_changed', json_build_object(
      'customer_id', OLD.customer_id, 'meter', OLD.meter, 'blocked', false, 'resets_at', OLD.resets_at)::text);
  ELSE
    PERFORM pg_notify('entitlements_changed', json_build_object(
      'customer_id', NEW.customer_id, 'meter', NEW.meter, 'blocked', NEW.blocked, 'resets_at', NEW.resets_at,
      'usage', NEW.usage::text, 'hard_limit', NEW.hard_limit::text, 'limit_state', NEW.limit_state,
      'notified', NEW.notified, 'usage_as_of', NEW.usage_as_of, 'next_decision', NEW.next_decision::text,
      'spend_blocked', NEW.spend_blocked, 'spend_runway', NEW.spend_runway::text)::text);
  END IF;
  RETURN NULL;
END
$$;

-- Soft notices below a spend cap (its soft_thresholds, percent of the cap) go through the
-- notifications outbox as kind spend_threshold_crossed: no meter, keyed by (subscription, period,
-- threshold). The kind lists name every kind so far; the coordinator unions them at merge.
ALTER TABLE notifications
  DROP CONSTRAINT notifications_kind_check,
  ADD CONSTRAINT notifications_kind_check CHECK (kind IN ('threshold_crossed', 'payment_failed', 'spend_threshold_crossed')),
  DROP CONSTRAINT notifications_kind_key,
  ADD CONSTRAINT notifications_kind_key CHECK (
    CASE kind WHEN 'threshold_crossed' THEN meter IS NOT NULL AND threshold IS NOT NULL AND invoice_id IS NULL
              WHEN 'spend_threshold_crossed' THEN meter IS NULL AND threshold IS NOT NULL AND invoice_id IS NULL
              ELSE invoice_id IS NOT NULL END);
CREATE UNIQUE INDEX notifications_spend_threshold ON notifications (subscription_id, period_start, threshold)
  WHERE kind = 'spend_threshold_crossed';

-- Down Migration
DELETE FROM notifications WHERE kind = 'spend_threshold_crossed';
DROP INDEX notifications_spend_threshold;
ALTER TABLE notifications
  DROP CONSTRAINT notifications_kind_key,
  ADD CONSTRAINT notifications_kind_key CHECK (
    CASE kind WHEN 'threshold_crossed' THEN meter IS NOT NULL AND threshold IS NOT NULL AND invoice_id IS NULL
              ELSE invoice_id IS NOT NULL END),
  DROP CONSTRAINT notifications_kind_check,
  ADD CONSTRAINT notifications_kind_check CHECK (kind IN ('threshold_crossed', 'payment_failed'));
CREATE OR REPLACE FUNCTION entitlements_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('entitlements_changed', json_build_object(
      'customer_id', OLD.customer_id, 'meter', OLD.meter, 'blocked', false, 'resets_at', OLD.resets_at)::text);
  ELSE
    PERFORM pg_notify('entitlements_changed', json_build_object(
      'customer_id', NEW.customer_id, 'meter', NEW.meter, 'blocked', NEW.blocked, 'resets_at', NEW.resets_at,
      'usage', NEW.usage::text, 'hard_limit', NEW.hard_limit::text, 'limit_state', NEW.limit_state,
      'notified', NEW.notified, 'usage_as_of', NEW.usage_as_of, 'next_decision', NEW.next_decision::text)::text);
  END IF;
  RETURN NULL;
END
$$;
ALTER TABLE entitlements DROP COLUMN spend_blocked, DROP COLUMN spend_runway;
ALTER TABLE subscriptions DROP COLUMN spend_cap;
