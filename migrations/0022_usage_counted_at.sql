-- Up Migration

-- When the real-time counters were read for the published usage: it counts everything any API
-- process stored before then, so an API process drops its own pending usage stored earlier instead
-- of reporting it again (src/metering/usage-signaler.ts). NULL when unknown: runs recorded before
-- they read the counters (a sum of the reports they received, still finishing their period) and
-- meters published from an earlier pricing. It travels like the rest of the quota state.
ALTER TABLE entitlements ADD COLUMN usage_counted_at timestamptz;

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
      'spend_blocked', NEW.spend_blocked, 'spend_runway', NEW.spend_runway::text,
      'usage_counted_at', NEW.usage_counted_at)::text);
  END IF;
  RETURN NULL;
END
$$;

-- Down Migration
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
ALTER TABLE entitlements DROP COLUMN usage_counted_at;
