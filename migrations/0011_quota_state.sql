-- Up Migration

-- The billing workflow also publishes each limited meter's state after it evaluates it: usage so
-- far in the period, the hard limit, the limit state and the thresholds already notified. API
-- processes keep it in memory (same NOTIFY as blocks), so a quota check can say what remains
-- without reading the database. It is as fresh as the workflow's last evaluation (usage reaches
-- the workflow at most about a second after it is stored).
ALTER TABLE entitlements
  ADD COLUMN usage       numeric CHECK (usage >= 0),
  ADD COLUMN hard_limit  numeric CHECK (hard_limit >= 0),
  ADD COLUMN limit_state text CHECK (limit_state IN ('ok', 'over_limit_in_grace', 'overage', 'blocked')),
  ADD COLUMN notified    text[] NOT NULL DEFAULT '{}',
  ADD COLUMN usage_as_of timestamptz;

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

-- Down Migration
CREATE OR REPLACE FUNCTION entitlements_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('entitlements_changed', json_build_object(
      'customer_id', OLD.customer_id, 'meter', OLD.meter, 'blocked', false, 'resets_at', OLD.resets_at)::text);
  ELSE
    PERFORM pg_notify('entitlements_changed', json_build_object(
      'customer_id', NEW.customer_id, 'meter', NEW.meter, 'blocked', NEW.blocked, 'resets_at', NEW.resets_at)::text);
  END IF;
  RETURN NULL;
END
$$;
ALTER TABLE entitlements DROP COLUMN usage, DROP COLUMN hard_limit, DROP COLUMN limit_state, DROP COLUMN notified, DROP COLUMN usage_as_of;
