-- Up Migration

-- How a plan's invoices are settled with prepaid credits. NULL is the default,
-- credit_then_invoice (credits first, the rest invoiced); credit_only means service stops when the
-- balance is spent (src/domain/credit-drawdown.ts). Plans are immutable: the column joins the
-- columns the immutability trigger guards.
ALTER TABLE plans ADD COLUMN settlement text CHECK (settlement IN ('credit_then_invoice', 'credit_only'));
DROP TRIGGER plans_are_immutable ON plans;
CREATE TRIGGER plans_are_immutable
  BEFORE UPDATE OF code, currency, rounding, base_fee, minimum_commitment, charges, limits, billing_interval, proration,
    tiers_across_segments, settlement OR DELETE ON plans
  FOR EACH ROW EXECUTE FUNCTION plans_refuse_change();

-- A grant of prepaid credit to a customer in one currency, under the caller's reference (the
-- natural key: the same reference never grants twice). Purchased grants are charged through the
-- payment provider under idempotency_key (derived from the grant id) and stay pending until the
-- provider answers; promotional grants are active at once. A grant's terms never change; only a
-- pending purchase moves, once, to active or declined. The money itself is in the ledger below.
CREATE TABLE credit_grants (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id        uuid NOT NULL REFERENCES customers (id),
  reference          text NOT NULL CHECK (length(reference) BETWEEN 1 AND 200),
  source             text NOT NULL CHECK (source IN ('purchased', 'promotional')),
  currency           char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  amount             numeric NOT NULL CHECK (amount > 0),
  -- Drawn in ascending priority, then earliest expiry, then oldest.
  priority           integer NOT NULL CHECK (priority BETWEEN 0 AND 1000),
  expires_at         timestamptz,
  status             text NOT NULL CHECK (status IN ('pending', 'active', 'declined')),
  idempotency_key    text UNIQUE,
  provider_charge_id text,
  decline_code       text,
  actor              text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
  created_at         timestamptz NOT NULL,
  UNIQUE (customer_id, reference),
  CHECK ((source = 'purchased') = (idempotency_key IS NOT NULL)),
  CHECK (source = 'purchased' OR status = 'active'),
  CHECK (source = 'promotional' OR status = 'pending' OR provider_charge_id IS NOT NULL)
);
CREATE INDEX credit_grants_customer_idx ON credit_grants (customer_id, currency, status);

CREATE FUNCTION credit_grants_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'credit grants are never deleted' USING ERRCODE = 'restrict_violation';
  END IF;
  IF (NEW.id, NEW.customer_id, NEW.reference, NEW.source, NEW.currency, NEW.amount, NEW.priority, NEW.expires_at, NEW.idempotency_key, NEW.actor, NEW.created_at)
       IS DISTINCT FROM (OLD.id, OLD.customer_id, OLD.reference, OLD.source, OLD.currency, OLD.amount, OLD.priority, OLD.expires_at, OLD.idempotency_key, OLD.actor, OLD.created_at)
     OR (OLD.status <> 'pending' AND NEW IS DISTINCT FROM OLD) THEN
    RAISE EXCEPTION 'credit grant % is immutable (only a pending purchase is settled, once)', OLD.id USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER credit_grants_guard BEFORE UPDATE OR DELETE ON credit_grants FOR EACH ROW EXECUTE FUNCTION credit_grants_guard();

-- The ledger: append-only; a customer's balance in a currency is the sum of its entries, a
-- grant's remaining credit the sum of the grant's entries. Signs: grant +, drawdown -, expiry -,
-- void + (reverses a drawdown of a voided invoice). balance_after is the running balance of the
-- customer and currency after the entry (written under a per-customer-currency lock), kept so
-- reconciliation can prove the sum and the statement agree. Natural keys make every writer
-- idempotent: one grant entry per grant, one drawdown and one void per invoice and grant, one
-- expiry per grant (plus one per voided invoice whose reversal landed on an already expired grant).
CREATE TABLE credit_ledger_entries (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  grant_id      uuid NOT NULL REFERENCES credit_grants (id),
  customer_id   uuid NOT NULL REFERENCES customers (id),
  currency      char(3) NOT NULL,
  kind          text NOT NULL CHECK (kind IN ('grant', 'drawdown', 'expiry', 'void')),
  amount        numeric NOT NULL CHECK (amount <> 0),
  invoice_id    uuid REFERENCES invoices (id),
  balance_after numeric NOT NULL,
  actor         text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
  created_at    timestamptz NOT NULL,
  CHECK (CASE kind
           WHEN 'grant' THEN amount > 0 AND invoice_id IS NULL
           WHEN 'drawdown' THEN amount < 0 AND invoice_id IS NOT NULL
           WHEN 'void' THEN amount > 0 AND invoice_id IS NOT NULL
           ELSE amount < 0 END)
);
CREATE UNIQUE INDEX credit_ledger_one_grant ON credit_ledger_entries (grant_id) WHERE kind = 'grant';
CREATE UNIQUE INDEX credit_ledger_one_drawdown ON credit_ledger_entries (invoice_id, grant_id) WHERE kind = 'drawdown';
CREATE UNIQUE INDEX credit_ledger_one_void ON credit_ledger_entries (invoice_id, grant_id) WHERE kind = 'void';
CREATE UNIQUE INDEX credit_ledger_one_expiry ON credit_ledger_entries (grant_id, COALESCE(invoice_id, '00000000-0000-0000-0000-000000000000'::uuid))
  WHERE kind = 'expiry';
CREATE INDEX credit_ledger_customer_idx ON credit_ledger_entries (customer_id, currency, id);
CREATE INDEX credit_ledger_grant_idx ON credit_ledger_entries (grant_id);
CREATE INDEX credit_ledger_invoice_idx ON credit_ledger_entries (invoice_id) WHERE invoice_id IS NOT NULL;

CREATE FUNCTION credit_ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the credit ledger is append-only: % refused; append a reversing entry instead', TG_OP USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER credit_ledger_no_update_delete BEFORE UPDATE OR DELETE ON credit_ledger_entries
  FOR EACH ROW EXECUTE FUNCTION credit_ledger_refuse_change();
CREATE TRIGGER credit_ledger_no_truncate BEFORE TRUNCATE ON credit_ledger_entries
  FOR EACH STATEMENT EXECUTE FUNCTION credit_ledger_refuse_change();

-- Automatic top-up, a customer setting per currency: when a drawdown leaves the balance below
-- threshold, `amount` is purchased (reference auto-top-up:<invoice id>, so once per invoice).
CREATE TABLE credit_auto_top_ups (
  customer_id uuid NOT NULL REFERENCES customers (id),
  currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  threshold   numeric NOT NULL CHECK (threshold >= 0),
  amount      numeric NOT NULL CHECK (amount > 0),
  enabled     boolean NOT NULL,
  updated_at  timestamptz NOT NULL,
  PRIMARY KEY (customer_id, currency)
);

-- Credits applied at finalization are a negative 'credit' line on the invoice.
ALTER TABLE invoice_lines
  DROP CONSTRAINT invoice_lines_type_check,
  ADD CONSTRAINT invoice_lines_type_check CHECK (type IN ('base_fee', 'usage', 'minimum_commitment_true_up', 'adjustment', 'interim_billed', 'discount', 'tax', 'credit'));

-- Reconciliation checks the ledger too; a balance finding concerns a customer and currency, not an invoice.
ALTER TABLE reconciliation_findings
  DROP CONSTRAINT reconciliation_findings_kind_check,
  ADD CONSTRAINT reconciliation_findings_kind_check CHECK (kind IN ('usage_mismatch', 'amount_mismatch', 'missing_invoice',
    'charge_missing_at_provider', 'charge_unrecorded', 'double_charge', 'charged_void_invoice', 'discount_mismatch', 'tax_mismatch',
    'credit_balance_mismatch', 'credit_drawdown_mismatch', 'credit_drawdown_on_void_invoice')),
  DROP CONSTRAINT reconciliation_findings_check3,
  ADD CONSTRAINT reconciliation_findings_invoice_check CHECK (kind IN ('missing_invoice', 'credit_balance_mismatch') OR invoice_id IS NOT NULL);

-- Down Migration
DELETE FROM reconciliation_findings WHERE kind IN ('credit_balance_mismatch', 'credit_drawdown_mismatch', 'credit_drawdown_on_void_invoice');
ALTER TABLE reconciliation_findings
  DROP CONSTRAINT reconciliation_findings_invoice_check,
  ADD CONSTRAINT reconciliation_findings_check3 CHECK (kind = 'missing_invoice' OR invoice_id IS NOT NULL),
  DROP CONSTRAINT reconciliation_findings_kind_check,
  ADD CONSTRAINT reconciliation_findings_kind_check CHECK (kind IN ('usage_mismatch', 'amount_mismatch', 'missing_invoice',
    'charge_missing_at_provider', 'charge_unrecorded', 'double_charge', 'charged_void_invoice', 'discount_mismatch', 'tax_mismatch'));
ALTER TABLE invoice_lines
  DROP CONSTRAINT invoice_lines_type_check,
  ADD CONSTRAINT invoice_lines_type_check CHECK (type IN ('base_fee', 'usage', 'minimum_commitment_true_up', 'adjustment', 'interim_billed', 'discount', 'tax'));
DROP TABLE credit_auto_top_ups;
DROP TRIGGER credit_ledger_no_truncate ON credit_ledger_entries;
DROP TRIGGER credit_ledger_no_update_delete ON credit_ledger_entries;
DROP TABLE credit_ledger_entries;
DROP FUNCTION credit_ledger_refuse_change();
DROP TRIGGER credit_grants_guard ON credit_grants;
DROP TABLE credit_grants;
DROP FUNCTION credit_grants_guard();
DROP TRIGGER plans_are_immutable ON plans;
CREATE TRIGGER plans_are_immutable
  BEFORE UPDATE OF code, currency, rounding, base_fee, minimum_commitment, charges, limits, billing_interval, proration,
    tiers_across_segments OR DELETE ON plans
  FOR EACH ROW EXECUTE FUNCTION plans_refuse_change();
ALTER TABLE plans DROP COLUMN settlement;
