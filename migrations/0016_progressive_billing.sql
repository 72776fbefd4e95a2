-- Up Migration

-- Progressive (threshold) billing. A subscription may carry spend thresholds: explicit amounts
-- and/or a recurring step, compared with the priced usage of the open period (usage lines only,
-- before the base fee and the minimum commitment). Empty amounts and no step: no interim invoices.
ALTER TABLE subscriptions
  ADD COLUMN spend_threshold_amounts numeric[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(spend_threshold_amounts) <= 50 AND 0 < ALL (spend_threshold_amounts)),
  ADD COLUMN spend_threshold_every numeric CHECK (spend_threshold_every > 0);

-- An invoice is the period's own ('period', sequence 0: one per customer and period, as before) or
-- an interim invoice issued when the open period's priced usage reached a spend threshold
-- ('interim', sequence 1, 2, … within the period, period_end = the instant it was cut, threshold =
-- the threshold reached). The natural key becomes (customer, period start, kind, sequence): the
-- workflow decides the sequence, so a retried or replayed draft lands on the same row.
ALTER TABLE invoices
  ADD COLUMN kind text NOT NULL DEFAULT 'period' CHECK (kind IN ('period', 'interim')),
  ADD COLUMN sequence integer NOT NULL DEFAULT 0 CHECK (sequence >= 0),
  ADD COLUMN threshold numeric CHECK (threshold > 0),
  ADD CONSTRAINT invoices_kind_sequence CHECK ((kind = 'period') = (sequence = 0)),
  ADD CONSTRAINT invoices_kind_threshold CHECK ((kind = 'interim') = (threshold IS NOT NULL)),
  DROP CONSTRAINT invoices_customer_id_period_start_key,
  ADD CONSTRAINT invoices_natural_key UNIQUE (customer_id, period_start, kind, sequence);

-- 'interim_billed' (negative): what the period's earlier interim invoices already billed, deducted
-- from an invoice that prices the period from its start again.
ALTER TABLE invoice_lines
  DROP CONSTRAINT invoice_lines_type_check,
  ADD CONSTRAINT invoice_lines_type_check CHECK (type IN ('base_fee', 'usage', 'minimum_commitment_true_up', 'adjustment', 'interim_billed'));

-- The key columns are frozen with the amounts once the invoice leaves draft.
CREATE OR REPLACE FUNCTION invoices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'invoices are never deleted; void it instead' USING ERRCODE = 'restrict_violation';
  END IF;
  IF OLD.status <> 'draft' AND (NEW.total, NEW.usage, NEW.currency, NEW.plan_code, NEW.period_start, NEW.period_end, NEW.customer_id, NEW.subscription_id,
                                NEW.kind, NEW.sequence, NEW.threshold)
       IS DISTINCT FROM (OLD.total, OLD.usage, OLD.currency, OLD.plan_code, OLD.period_start, OLD.period_end, OLD.customer_id, OLD.subscription_id,
                         OLD.kind, OLD.sequence, OLD.threshold) THEN
    RAISE EXCEPTION 'invoice % is % and immutable', OLD.id, OLD.status USING ERRCODE = 'restrict_violation';
  END IF;
  IF NEW.status <> OLD.status AND NOT (OLD.status, NEW.status) IN (
       ('draft', 'finalized'), ('draft', 'void'), ('finalized', 'paid'), ('finalized', 'payment_failed'),
       ('finalized', 'void'), ('payment_failed', 'paid'), ('payment_failed', 'void')) THEN
    RAISE EXCEPTION 'invoice % cannot go from % to %', OLD.id, OLD.status, NEW.status USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;

-- Down Migration
CREATE OR REPLACE FUNCTION invoices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
-- Interim invoices have no place in the old key, and invoices are never deleted: refuse.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM invoices WHERE kind = 'interim') THEN
    RAISE EXCEPTION 'interim invoices exist: they cannot be kept under the old key (customer, period start)';
  END IF;
END $$;
ALTER TABLE invoice_lines
  DROP CONSTRAINT invoice_lines_type_check,
  ADD CONSTRAINT invoice_lines_type_check CHECK (type IN ('base_fee', 'usage', 'minimum_commitment_true_up', 'adjustment'));
ALTER TABLE invoices
  DROP CONSTRAINT invoices_natural_key,
  ADD CONSTRAINT invoices_customer_id_period_start_key UNIQUE (customer_id, period_start),
  DROP COLUMN threshold,
  DROP COLUMN sequence,
  DROP COLUMN kind;
ALTER TABLE subscriptions
  DROP COLUMN spend_threshold_every,
  DROP COLUMN spend_threshold_amounts;
