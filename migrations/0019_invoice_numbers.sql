-- Up Migration

-- Invoice numbers: one gapless series per seller and year ("INV-2026" numbers INV-2026-000001,
-- INV-2026-000002, ...). A finance requirement, so not a sequence: a sequence hands out a value
-- even when the transaction that took it rolls back. The finalizing transaction instead
-- increments the series' row, which stays locked until it commits; a rollback (or a crash, or a
-- finalize activity retried after a failure) undoes the increment with everything else, and
-- concurrent finalizations queue on the row.
CREATE TABLE invoice_number_series (
  series      text PRIMARY KEY CHECK (series ~ '^[A-Za-z0-9][A-Za-z0-9-]{0,30}$'),
  last_number integer NOT NULL CHECK (last_number >= 1)
);

-- At finalization an invoice is numbered and keeps a snapshot of who issued it and to whom, so a
-- later change of the seller's configuration or of the customer's name never alters an issued
-- document. Drafts (and drafts voided before finalization) have none of the three.
ALTER TABLE invoices
  ADD COLUMN number  text UNIQUE,
  ADD COLUMN seller  jsonb CHECK (jsonb_typeof(seller) = 'object'),
  ADD COLUMN bill_to jsonb CHECK (jsonb_typeof(bill_to) = 'object');

-- Invoices finalized before numbering existed are numbered in the order they were finalized,
-- with the default prefix (the only one there was), and the series go on after them. Their
-- customer is snapshotted as it is now; the seller's configuration is not visible from SQL, so
-- their documents say that the seller was not recorded.
WITH numbered AS (
  SELECT i.id,
         'INV-' || to_char(i.finalized_at AT TIME ZONE 'UTC', 'YYYY') AS series,
         row_number() OVER (PARTITION BY to_char(i.finalized_at AT TIME ZONE 'UTC', 'YYYY') ORDER BY i.finalized_at, i.id) AS n,
         jsonb_build_object('name', c.name, 'external_id', c.external_id) AS bill_to
    FROM invoices i JOIN customers c ON c.id = i.customer_id
   WHERE i.finalized_at IS NOT NULL
), assigned AS (
  UPDATE invoices i
     SET number = numbered.series || '-' || lpad(numbered.n::text, greatest(6, length(numbered.n::text)), '0'),
         bill_to = numbered.bill_to
    FROM numbered
   WHERE i.id = numbered.id
  RETURNING numbered.series, numbered.n
)
INSERT INTO invoice_number_series (series, last_number)
SELECT series, max(n) FROM assigned GROUP BY series;

ALTER TABLE invoices
  ADD CONSTRAINT invoices_numbered_when_finalized CHECK ((number IS NULL) = (finalized_at IS NULL)),
  ADD CONSTRAINT invoices_bill_to_when_finalized CHECK ((bill_to IS NULL) = (finalized_at IS NULL)),
  ADD CONSTRAINT invoices_seller_only_when_finalized CHECK (seller IS NULL OR finalized_at IS NOT NULL);

-- Number and snapshots are frozen once given, like the amounts (invoices_guard, 0009). Its own
-- trigger, so this migration does not rewrite invoices_guard.
CREATE FUNCTION invoices_issue_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.number IS NOT NULL AND (NEW.number, NEW.seller, NEW.bill_to) IS DISTINCT FROM (OLD.number, OLD.seller, OLD.bill_to) THEN
    RAISE EXCEPTION 'invoice % is numbered %: its number and parties are immutable', OLD.id, OLD.number USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER invoices_issue_guard BEFORE UPDATE ON invoices FOR EACH ROW EXECUTE FUNCTION invoices_issue_guard();

-- Down Migration
DROP TRIGGER invoices_issue_guard ON invoices;
DROP FUNCTION invoices_issue_guard();
ALTER TABLE invoices
  DROP CONSTRAINT invoices_numbered_when_finalized,
  DROP CONSTRAINT invoices_bill_to_when_finalized,
  DROP CONSTRAINT invoices_seller_only_when_finalized,
  DROP COLUMN number,
  DROP COLUMN seller,
  DROP COLUMN bill_to;
DROP TABLE invoice_number_series;
