-- Up Migration

-- What the billing workflow decided about a customer's use of a meter: blocked once a `block`
-- hard limit stayed exceeded past its grace period, unblocked by an upgrade or at the period
-- close. One row per (customer, meter), upserted by the setEntitlement activity; an unblock keeps
-- the row (blocked = false), and the history of decisions is in audit_log. resets_at is the end of
-- the period the decision belongs to: a block lapses then, even if the unblock never arrives.
-- meter is the meter code, as plans and the workflow name meters (codes never change).
CREATE TABLE entitlements (
  customer_id uuid NOT NULL REFERENCES customers (id),
  meter       text NOT NULL REFERENCES meters (code),
  blocked     boolean NOT NULL,
  reason      text CHECK (reason IN ('hard_limit')),
  resets_at   timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL,
  PRIMARY KEY (customer_id, meter),
  CHECK (blocked = (reason IS NOT NULL))
);

-- Every API process holds the blocked pairs in memory and refuses usage from there; any change
-- to a row, whoever makes it (the activity, an operator in psql), is sent to them in full so they
-- apply it without a read. pg_notify is transactional: heard only after COMMIT, in commit order.
-- A deleted row is announced as not blocked.
CREATE FUNCTION entitlements_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER entitlements_notify_change AFTER INSERT OR UPDATE OR DELETE ON entitlements
  FOR EACH ROW EXECUTE FUNCTION entitlements_notify_change();

-- Down Migration
DROP TABLE entitlements;
DROP FUNCTION entitlements_notify_change();
