-- Up Migration

-- The audit log becomes a hash chain, so an edit that bypasses the append-only triggers (a
-- superuser disabling them) shows: every row carries the hash of its predecessor and its own,
--
--   hash = sha256(prev_hash || serialization(row)),  prev_hash of the first row = 32 zero bytes
--
-- serialization(row) concatenates, in this order, chain_seq, id, occurred_at, actor, action,
-- subject_type, subject_id, details, before, after, each as its text form in UTF-8 preceded by
-- its byte length as a 4-byte big-endian integer; NULL is the length -1 and no bytes. The length
-- prefixes make the encoding unambiguous whatever the values contain. Text forms: integers in
-- decimal, occurred_at in UTC as `YYYY-MM-DDTHH:MI:SS.ffffffZ` (independent of the session's
-- TimeZone and DateStyle), jsonb as jsonb::text (jsonb stores one normal form, so equal values
-- print equally). src/db/audit-verify.ts rebuilds the same bytes in TypeScript and checks every
-- hash and link without calling the functions below, which an intruder could replace.
--
-- before/after hold the state a change replaced and produced, when the caller has it.
ALTER TABLE audit_log
  ADD COLUMN before    jsonb CHECK (jsonb_typeof(before) = 'object'),
  ADD COLUMN after     jsonb CHECK (jsonb_typeof(after) = 'object'),
  ADD COLUMN chain_seq bigint UNIQUE CHECK (chain_seq > 0),
  ADD COLUMN prev_hash bytea CHECK (length(prev_hash) = 32),
  ADD COLUMN hash      bytea CHECK (length(hash) = 32);

CREATE FUNCTION audit_log_field(value text) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN value IS NULL THEN int4send(-1)
              ELSE int4send(octet_length(convert_to(value, 'UTF8'))) || convert_to(value, 'UTF8') END
$$;

CREATE FUNCTION audit_log_serialize(r audit_log) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT audit_log_field(r.chain_seq::text)
      || audit_log_field(r.id::text)
      || audit_log_field(to_char(r.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
      || audit_log_field(r.actor)
      || audit_log_field(r.action)
      || audit_log_field(r.subject_type)
      || audit_log_field(r.subject_id)
      || audit_log_field(r.details::text)
      || audit_log_field(r.before::text)
      || audit_log_field(r.after::text)
$$;

-- Existing rows join the chain in id order (the triggers refusing updates step aside for this).
ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete;
DO $$
DECLARE
  r audit_log;
  prev bytea := decode(repeat('00', 32), 'hex');
  seq bigint := 0;
BEGIN
  FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
    seq := seq + 1;
    r.chain_seq := seq;
    r.prev_hash := prev;
    r.hash := sha256(prev || audit_log_serialize(r));
    UPDATE audit_log SET chain_seq = r.chain_seq, prev_hash = r.prev_hash, hash = r.hash WHERE id = r.id;
    prev := r.hash;
  END LOOP;
END
$$;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update_delete;

ALTER TABLE audit_log
  ALTER COLUMN chain_seq SET NOT NULL,
  ALTER COLUMN prev_hash SET NOT NULL,
  ALTER COLUMN hash SET NOT NULL;

-- Chain order is chain_seq, not id: identity ids are drawn before any lock and commit out of
-- order. Each insert takes one transaction-scoped advisory lock (the two-key form, a key space
-- apart from the one-key locks used elsewhere) and only then reads the head, so appends are
-- serialized until their transaction ends and the next one reads the committed head (READ
-- COMMITTED takes a fresh snapshot per statement). A rolled-back append frees its position for
-- the next, leaving no gap. A REPEATABLE READ or SERIALIZABLE transaction whose snapshot predates
-- the head fails on the chain_seq unique constraint instead of forking the chain. Whatever an
-- INSERT passes for chain_seq, prev_hash and hash is overwritten here.
CREATE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  head_seq bigint;
  head_hash bytea;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('audit_log'), 0);
  SELECT chain_seq, hash INTO head_seq, head_hash FROM audit_log ORDER BY chain_seq DESC LIMIT 1;
  NEW.chain_seq := coalesce(head_seq, 0) + 1;
  NEW.prev_hash := coalesce(head_hash, decode(repeat('00', 32), 'hex'));
  NEW.hash := sha256(NEW.prev_hash || audit_log_serialize(NEW));
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_chain();

-- Down Migration
DROP TRIGGER audit_log_chain ON audit_log;
DROP FUNCTION audit_log_chain();
DROP FUNCTION audit_log_serialize(audit_log);
DROP FUNCTION audit_log_field(text);
ALTER TABLE audit_log
  DROP COLUMN hash,
  DROP COLUMN prev_hash,
  DROP COLUMN chain_seq,
  DROP COLUMN after,
  DROP COLUMN before;
