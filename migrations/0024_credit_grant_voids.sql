-- Up Migration

-- Voiding a grant: one 'grant_void' entry per grant (the natural key) takes what is left of it out
-- of the balance: negative, on no invoice, never more than is left (what was drawn stays drawn).
-- A voided purchase is not refunded: the money stays with the payment provider (see README).
ALTER TABLE credit_ledger_entries
  DROP CONSTRAINT credit_ledger_entries_kind_check,
  ADD CONSTRAINT credit_ledger_entries_kind_check CHECK (kind IN ('grant', 'drawdown', 'expiry', 'void', 'grant_void')),
  DROP CONSTRAINT credit_ledger_entries_check,
  ADD CONSTRAINT credit_ledger_entries_check CHECK (CASE kind
           WHEN 'grant' THEN amount > 0 AND invoice_id IS NULL
           WHEN 'drawdown' THEN amount < 0 AND invoice_id IS NOT NULL
           WHEN 'void' THEN amount > 0 AND invoice_id IS NOT NULL
           WHEN 'grant_void' THEN amount < 0 AND invoice_id IS NULL
           ELSE amount < 0 END);
CREATE UNIQUE INDEX credit_ledger_one_grant_void ON credit_ledger_entries (grant_id) WHERE kind = 'grant_void';

-- Down Migration
-- Fails while a grant_void entry exists: the ledger is append-only, so it cannot be rolled back past a void.
DROP INDEX credit_ledger_one_grant_void;
ALTER TABLE credit_ledger_entries
  DROP CONSTRAINT credit_ledger_entries_check,
  ADD CONSTRAINT credit_ledger_entries_check CHECK (CASE kind
           WHEN 'grant' THEN amount > 0 AND invoice_id IS NULL
           WHEN 'drawdown' THEN amount < 0 AND invoice_id IS NOT NULL
           WHEN 'void' THEN amount > 0 AND invoice_id IS NOT NULL
           ELSE amount < 0 END),
  DROP CONSTRAINT credit_ledger_entries_kind_check,
  ADD CONSTRAINT credit_ledger_entries_kind_check CHECK (kind IN ('grant', 'drawdown', 'expiry', 'void'));
