-- Up Migration

-- The billing workflow also publishes, per limited meter, its next decision point: the usage at
-- which it next decides something (the lowest soft threshold not yet notified, or the hard limit
-- while usage is below it; NULL when nothing is left). API processes signal the workflow at once
-- when usage nears it and otherwise report slowly. It travels like the rest of the quota state.
ALTER TABLE entitlements ADD COLUMN next_decision numeric CHECK (next_decision >= 0);

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
      'notified', NEW.notified, 'usage_as_of', NEW.usage_as_of)::text);
  END IF;
  RETURN NULL;
END
$$;
ALTER TABLE entitlements DROP COLUMN next_decision;
