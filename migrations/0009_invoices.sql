-- Up Migration

-- Invoices replace the bare usage record of a period close.
DROP TABLE period_closes;

-- One invoice per customer and period, under that natural key: the close activity can run any
-- number of times and still yields one invoice. usage is exact usage per meter recomputed from
-- usage_events for [period_start, period_end), never the real-time counters. Amounts are NUMERIC
-- (decimal strings in JSON), each line rounded once to the currency's minor unit; total is the
-- sum of the rounded lines. status: draft -> finalized -> paid | payment_failed (-> paid), and
-- void (with a reason) from draft, finalized or payment_failed. A paid invoice is never voided:
-- that would need a refund, which is the payment provider's business.
CREATE TABLE invoices (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id        uuid NOT NULL REFERENCES customers (id),
  subscription_id    uuid NOT NULL REFERENCES subscriptions (id),
  plan_code          text NOT NULL REFERENCES plans (code),
  currency           char(3) NOT NULL,
  period_start       timestamptz NOT NULL,
  period_end         timestamptz NOT NULL CHECK (period_end >= period_start),
  status             text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'finalized', 'paid', 'payment_failed', 'void')),
  usage              jsonb NOT NULL CHECK (jsonb_typeof(usage) = 'object'),
  total              numeric NOT NULL,
  created_at         timestamptz NOT NULL,
  finalized_at       timestamptz,
  paid_at            timestamptz,
  payment_failed_at  timestamptz,
  voided_at          timestamptz,
  void_reason        text CHECK (length(void_reason) BETWEEN 1 AND 500),
  UNIQUE (customer_id, period_start),
  CHECK ((status = 'void') = (voided_at IS NOT NULL AND void_reason IS NOT NULL)),
  CHECK (status = 'draft' OR status = 'void' OR finalized_at IS NOT NULL)
);
CREATE INDEX invoices_period_idx ON invoices (period_start, customer_id);
CREATE INDEX invoices_status_idx ON invoices (status, period_start);

-- Lines, in order. An adjustment line bills usage that arrived after an earlier invoice was
-- finalized (finalized invoices never change) and names that invoice and its period.
CREATE TABLE invoice_lines (
  invoice_id           uuid NOT NULL REFERENCES invoices (id),
  position             integer NOT NULL CHECK (position >= 1),
  type                 text NOT NULL CHECK (type IN ('base_fee', 'usage', 'minimum_commitment_true_up', 'adjustment')),
  meter                text REFERENCES meters (code),
  model                text,
  quantity             numeric,
  description          text NOT NULL,
  exact_amount         numeric NOT NULL,
  amount               numeric NOT NULL,
  breakdown            jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(breakdown) = 'array'),
  adjusts_invoice_id   uuid REFERENCES invoices (id),
  adjusts_period_start timestamptz,
  adjusts_period_end   timestamptz,
  PRIMARY KEY (invoice_id, position),
  CHECK ((type = 'adjustment') = (adjusts_invoice_id IS NOT NULL AND adjusts_period_start IS NOT NULL AND adjusts_period_end IS NOT NULL))
);
CREATE INDEX invoice_lines_adjusts_idx ON invoice_lines (adjusts_invoice_id) WHERE adjusts_invoice_id IS NOT NULL;

-- Once an invoice leaves draft its amounts and lines are frozen, and only the lifecycle moves
-- above are possible. Enforced here so no code path (or hand-written SQL) can rewrite a sent invoice.
CREATE FUNCTION invoices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'invoices are never deleted; void it instead' USING ERRCODE = 'restrict_violation';
  END IF;
  IF OLD.status <> 'draft' AND (NEW.total, NEW.usage, NEW.currency, NEW.plan_code, NEW.period_start, NEW.period_end, NEW.customer_id, NEW.subscription_id)
       IS DISTINCT FROM (OLD.total, OLD.usage, OLD.currency, OLD.plan_code, OLD.period_start, OLD.period_end, OLD.customer_id, OLD.subscription_id) THEN
    RAISE EXCEPTION 'invoice % is % and immutable', OLD.id, OLD.status USING ERRCODE = 'restrict_violation';
  END IF;
  IF NEW.status <> OLD.status AND NOT (OLD.status, NEW.status) IN (
       ('draft', 'finalized'), ('draft', 'void'), ('finalized', 'paid'), ('finalized', 'payment_failed'),
       ('finalized', 'void'), ('payment_failed', 'paid'), ('payment_failed', 'void')) THEN
    RAISE EXCEPTION 'invoice % cannot go from % to %', OLD.id, OLD.status, NEW.status USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER invoices_guard BEFORE UPDATE OR DELETE ON invoices FOR EACH ROW EXECUTE FUNCTION invoices_guard();

CREATE FUNCTION invoice_lines_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  invoice_status text;
BEGIN
  SELECT status INTO invoice_status FROM invoices WHERE id = COALESCE(NEW.invoice_id, OLD.invoice_id);
  IF invoice_status <> 'draft' THEN
    RAISE EXCEPTION 'lines of a % invoice are immutable', invoice_status USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN COALESCE(NEW, OLD);
END $$;
CREATE TRIGGER invoice_lines_guard BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines FOR EACH ROW EXECUTE FUNCTION invoice_lines_guard();

-- At most one charge per invoice: the invoice is the charge's business key (never a workflow run
-- id, which changes on continue-as-new and on a reset from the Temporal UI).
CREATE TABLE charges (
  invoice_id         uuid PRIMARY KEY REFERENCES invoices (id),
  amount             numeric NOT NULL CHECK (amount > 0),
  currency           char(3) NOT NULL,
  status             text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  provider_charge_id text,
  created_at         timestamptz NOT NULL,
  updated_at         timestamptz NOT NULL,
  CHECK ((status = 'succeeded') = (provider_charge_id IS NOT NULL))
);

-- Each try to collect a charge, one per dunning step. The provider call carries idempotency_key,
-- derived from the invoice and the attempt number, so a retried activity (timeout, 5xx, lost
-- response) repeats the same request and the provider cannot charge twice. A declined attempt
-- is final for its key; the next dunning step is a new attempt with a new key.
CREATE TABLE charge_attempts (
  invoice_id         uuid NOT NULL REFERENCES charges (invoice_id),
  attempt            integer NOT NULL CHECK (attempt >= 1),
  idempotency_key    text NOT NULL UNIQUE,
  status             text NOT NULL CHECK (status IN ('pending', 'succeeded', 'declined')),
  provider_charge_id text,
  decline_code       text,
  requested_at       timestamptz NOT NULL,
  completed_at       timestamptz,
  PRIMARY KEY (invoice_id, attempt)
);
-- The last line of defence against recording a double charge.
CREATE UNIQUE INDEX charge_attempts_one_success ON charge_attempts (invoice_id) WHERE status = 'succeeded';

-- The notifications outbox also carries "payment failed" (after the last dunning attempt), raised
-- in the same transaction that marks the invoice, and keyed by it: one notification per invoice.
ALTER TABLE notifications
  DROP CONSTRAINT notifications_kind_check,
  ADD CONSTRAINT notifications_kind_check CHECK (kind IN ('threshold_crossed', 'payment_failed')),
  ALTER COLUMN meter DROP NOT NULL,
  ALTER COLUMN threshold DROP NOT NULL,
  ADD COLUMN invoice_id uuid REFERENCES invoices (id),
  ADD CONSTRAINT notifications_kind_key CHECK (
    CASE kind WHEN 'threshold_crossed' THEN meter IS NOT NULL AND threshold IS NOT NULL AND invoice_id IS NULL
              ELSE invoice_id IS NOT NULL END);
CREATE UNIQUE INDEX notifications_invoice_kind ON notifications (invoice_id, kind) WHERE invoice_id IS NOT NULL;

-- Down Migration
DELETE FROM notifications WHERE kind = 'payment_failed';
DROP INDEX notifications_invoice_kind;
ALTER TABLE notifications
  DROP CONSTRAINT notifications_kind_key,
  DROP COLUMN invoice_id,
  ALTER COLUMN meter SET NOT NULL,
  ALTER COLUMN threshold SET NOT NULL,
  DROP CONSTRAINT notifications_kind_check,
  ADD CONSTRAINT notifications_kind_check CHECK (kind IN ('threshold_crossed'));
DROP TABLE charge_attempts;
DROP TABLE charges;
DROP TRIGGER invoice_lines_guard ON invoice_lines;
DROP FUNCTION invoice_lines_guard();
DROP TABLE invoice_lines;
DROP TRIGGER invoices_guard ON invoices;
DROP FUNCTION invoices_guard();
DROP TABLE invoices;
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
