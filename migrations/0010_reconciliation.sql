-- Up Migration

-- One reconciliation of a scope: the invoices whose period starts in [period_start, period_end),
-- of one customer or of all. id is the id of the Temporal workflow that runs it (chosen by the
-- starter, e.g. reconcile/2026-11-01T00:00:00.000Z/all), so the Temporal UI and this table name
-- the same run. Starting that workflow id again re-opens the run: its findings are recomputed
-- and resolved ones keep their history. Counts are refreshed on every change of its findings.
CREATE TABLE reconciliation_runs (
  id               text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 1000),
  period_start     timestamptz NOT NULL,
  period_end       timestamptz NOT NULL CHECK (period_end > period_start),
  customer_id      uuid REFERENCES customers (id),
  status           text NOT NULL CHECK (status IN ('running', 'awaiting_decision', 'completed', 'canceled')),
  started_by       text NOT NULL CHECK (length(started_by) BETWEEN 1 AND 200),
  invoices_checked integer NOT NULL DEFAULT 0,
  findings         integer NOT NULL DEFAULT 0,
  pending          integer NOT NULL DEFAULT 0,
  corrected        integer NOT NULL DEFAULT 0,
  dismissed        integer NOT NULL DEFAULT 0,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  completed_at     timestamptz,
  CHECK ((status IN ('completed', 'canceled')) = (completed_at IS NOT NULL))
);

-- A difference between what was invoiced or collected and what the raw events, the plan and the
-- payment provider say. key names the thing compared (kind, invoice or subscription period, and
-- meter) and is the same in every run, so a later run can tell a difference that was already
-- settled from a new one. correction is the money a credit note would settle it with, in the
-- invoice's currency (positive: owed back to the customer; negative: owed by the customer);
-- NULL when no credit note can settle it (it is fixed at the source and re-checked, or dismissed).
-- carried_from: this finding repeats a difference an earlier finding already resolved, and
-- takes its resolution. Pending and carried findings are recomputed on every run of the
-- reconciliation; a finding resolved by a decision stays as it was decided.
CREATE TABLE reconciliation_findings (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id          text NOT NULL REFERENCES reconciliation_runs (id),
  key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 500),
  kind            text NOT NULL CHECK (kind IN ('usage_mismatch', 'amount_mismatch', 'missing_invoice', 'charge_missing_at_provider',
                                                'charge_unrecorded', 'double_charge', 'charged_void_invoice')),
  customer_id     uuid NOT NULL REFERENCES customers (id),
  invoice_id      uuid REFERENCES invoices (id),
  subject         text,
  description     text NOT NULL CHECK (length(description) BETWEEN 1 AND 1000),
  expected        jsonb NOT NULL,
  actual          jsonb NOT NULL,
  correction      numeric CHECK (correction <> 0),
  currency        char(3),
  resolution      text NOT NULL DEFAULT 'pending' CHECK (resolution IN ('pending', 'corrected', 'dismissed')),
  resolved_at     timestamptz,
  resolved_by     text CHECK (length(resolved_by) BETWEEN 1 AND 200),
  resolution_note text CHECK (length(resolution_note) BETWEEN 1 AND 1000),
  carried_from    bigint REFERENCES reconciliation_findings (id),
  created_at      timestamptz NOT NULL,
  CHECK ((resolution = 'pending') = (resolved_at IS NULL AND resolved_by IS NULL)),
  CHECK (carried_from IS NULL OR resolution <> 'pending'),
  CHECK ((correction IS NULL) = (currency IS NULL)),
  CHECK (kind = 'missing_invoice' OR invoice_id IS NOT NULL)
);
-- At most one open finding per difference and run: a re-run replaces it instead of adding one.
CREATE UNIQUE INDEX reconciliation_findings_one_pending ON reconciliation_findings (run_id, key) WHERE resolution = 'pending';
CREATE INDEX reconciliation_findings_run_idx ON reconciliation_findings (run_id, id);
CREATE INDEX reconciliation_findings_key_idx ON reconciliation_findings (key, id) WHERE resolution <> 'pending';
CREATE INDEX reconciliation_findings_invoice_idx ON reconciliation_findings (invoice_id) WHERE invoice_id IS NOT NULL;

-- A decision is final: what was found never changes, a resolution never goes back to pending,
-- and only findings nobody decided on (pending or carried) may be replaced by a re-run.
CREATE FUNCTION reconciliation_findings_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.resolution <> 'pending' AND OLD.carried_from IS NULL THEN
      RAISE EXCEPTION 'finding % was %; it is kept', OLD.id, OLD.resolution USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN OLD;
  END IF;
  IF (NEW.run_id, NEW.key, NEW.kind, NEW.customer_id, NEW.invoice_id, NEW.subject, NEW.expected, NEW.actual, NEW.correction, NEW.currency, NEW.carried_from, NEW.created_at)
       IS DISTINCT FROM (OLD.run_id, OLD.key, OLD.kind, OLD.customer_id, OLD.invoice_id, OLD.subject, OLD.expected, OLD.actual, OLD.correction, OLD.currency, OLD.carried_from, OLD.created_at) THEN
    RAISE EXCEPTION 'finding % is immutable; only its resolution may be decided', OLD.id USING ERRCODE = 'restrict_violation';
  END IF;
  IF OLD.resolution <> 'pending' AND NEW IS DISTINCT FROM OLD THEN
    RAISE EXCEPTION 'finding % was already %', OLD.id, OLD.resolution USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER reconciliation_findings_guard BEFORE UPDATE OR DELETE ON reconciliation_findings
  FOR EACH ROW EXECUTE FUNCTION reconciliation_findings_guard();

-- What a correction owes: positive amounts are owed back to the customer (refund or credit),
-- negative ones are a supplemental charge owed by the customer. One per finding (UNIQUE), so an
-- approval retried or replayed corrects once. Like the audit log, never changed or removed:
-- a wrong credit note is reversed by a later one.
CREATE TABLE credit_notes (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  invoice_id uuid NOT NULL REFERENCES invoices (id),
  finding_id bigint NOT NULL UNIQUE REFERENCES reconciliation_findings (id),
  amount     numeric NOT NULL CHECK (amount <> 0),
  currency   char(3) NOT NULL,
  reason     text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
  created_at timestamptz NOT NULL
);
CREATE INDEX credit_notes_invoice_idx ON credit_notes (invoice_id);

CREATE FUNCTION credit_notes_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'credit notes are append-only: % refused; issue a reversing credit note instead', TG_OP USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER credit_notes_no_update_delete BEFORE UPDATE OR DELETE ON credit_notes
  FOR EACH ROW EXECUTE FUNCTION credit_notes_refuse_change();
CREATE TRIGGER credit_notes_no_truncate BEFORE TRUNCATE ON credit_notes
  FOR EACH STATEMENT EXECUTE FUNCTION credit_notes_refuse_change();

-- Down Migration
DROP TRIGGER credit_notes_no_truncate ON credit_notes;
DROP TRIGGER credit_notes_no_update_delete ON credit_notes;
DROP TABLE credit_notes;
DROP FUNCTION credit_notes_refuse_change();
DROP TRIGGER reconciliation_findings_guard ON reconciliation_findings;
DROP TABLE reconciliation_findings;
DROP FUNCTION reconciliation_findings_guard();
DROP TABLE reconciliation_runs;
