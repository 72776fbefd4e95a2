-- Up Migration

-- Who changed what, for every chapter of the product: API keys today, plans and invoices later.
-- Callers write entries inside the transaction that makes the change (src/db/audit.ts), so an
-- entry exists exactly when the change committed. actor names who acted: `key:<api key id>`,
-- `cli`, or `system`; subject_id is text so any table's key fits. details never holds secrets.
CREATE TABLE audit_log (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  occurred_at  timestamptz NOT NULL DEFAULT now(),
  actor        text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
  action       text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
  subject_type text NOT NULL CHECK (length(subject_type) BETWEEN 1 AND 64),
  subject_id   text NOT NULL CHECK (length(subject_id) BETWEEN 1 AND 200),
  details      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object')
);
CREATE INDEX audit_log_subject_idx ON audit_log (subject_type, subject_id, occurred_at);

-- Append-only: a trail that can be edited proves nothing. Only a superuser dropping the trigger
-- (itself visible in the DDL history) can change past entries.
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- API keys. The secret itself is never stored: key_hash is HMAC-SHA256(pepper, key) under the
-- server-side pepper named by pepper_version, so a leaked table yields no usable key, and
-- peppers can rotate (keys hashed under an older version are rehashed on their next use).
-- start is the non-secret beginning of the key (prefix, environment, 4 characters) that lets a
-- person recognise it in a list. A key stops working when revoked_at is set or expires_at has
-- passed; rotation creates a new key (replaced_by) and moves the old key's expires_at to the
-- chosen grace deadline.
CREATE TABLE api_keys (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
  environment     text NOT NULL CHECK (environment IN ('live', 'test')),
  scopes          text[] NOT NULL CHECK (
                    cardinality(scopes) >= 1
                    AND scopes <@ ARRAY['events:write', 'usage:read', 'billing:read', 'billing:admin', 'keys:admin']),
  customer_id     uuid REFERENCES customers (id),
  key_hash        bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
  pepper_version  integer NOT NULL CHECK (pepper_version > 0),
  start           text NOT NULL CHECK (length(start) BETWEEN 1 AND 32),
  rate_per_second integer NOT NULL CHECK (rate_per_second > 0),
  burst           integer NOT NULL CHECK (burst >= 0),
  expires_at      timestamptz,
  revoked_at      timestamptz,
  replaced_by     uuid REFERENCES api_keys (id),
  created_by      text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_created_idx ON api_keys (created_at, id);
CREATE INDEX api_keys_customer_idx ON api_keys (customer_id) WHERE customer_id IS NOT NULL;

-- Every API process caches verified keys in memory; any change to a key row, whoever makes it
-- (the API, the CLI, an operator in psql), tells them to drop it. pg_notify is transactional:
-- listeners hear it only after COMMIT, and never for a rolled-back change.
CREATE FUNCTION api_keys_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('api_keys_changed', OLD.id::text);
  RETURN NULL;
END
$$;
CREATE TRIGGER api_keys_notify_change AFTER UPDATE OR DELETE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION api_keys_notify_change();

-- Down Migration
DROP TABLE api_keys;
DROP FUNCTION api_keys_notify_change();
DROP TABLE audit_log;
DROP FUNCTION audit_log_refuse_change();
