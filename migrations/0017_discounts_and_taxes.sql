-- Up Migration

-- Coupons: defined once by an admin, never changed (other terms need a new code), like plans.
-- discount: percentage (percent_off in (0, 100]) or fixed_amount (amount_off > 0 in currency).
-- duration: once, repeating (periods), forever. meters: only these meters' usage is discounted;
-- NULL: the base fee, all usage and the minimum-commitment true-up.
CREATE TABLE coupons (
  code             text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
  name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
  discount_type    text NOT NULL CHECK (discount_type IN ('percentage', 'fixed_amount')),
  percent_off      numeric CHECK (percent_off > 0 AND percent_off <= 100),
  amount_off       numeric CHECK (amount_off > 0),
  currency         char(3),
  duration         text NOT NULL CHECK (duration IN ('once', 'repeating', 'forever')),
  duration_periods integer CHECK (duration_periods BETWEEN 1 AND 1200),
  meters           text[] CHECK (cardinality(meters) >= 1),
  created_at       timestamptz NOT NULL,
  CHECK (CASE discount_type WHEN 'percentage' THEN percent_off IS NOT NULL AND amount_off IS NULL AND currency IS NULL
                            ELSE percent_off IS NULL AND amount_off IS NOT NULL AND currency IS NOT NULL END),
  CHECK ((duration = 'repeating') = (duration_periods IS NOT NULL))
);

-- A coupon applied to a customer, or to one of its subscriptions only. Applying the same coupon
-- to the same customer and subscription again is the same application (idempotent).
CREATE TABLE coupon_applications (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  coupon_code     text NOT NULL REFERENCES coupons (code),
  customer_id     uuid NOT NULL REFERENCES customers (id),
  subscription_id uuid REFERENCES subscriptions (id),
  created_at      timestamptz NOT NULL
);
CREATE UNIQUE INDEX coupon_applications_key
  ON coupon_applications (customer_id, coupon_code, coalesce(subscription_id, '00000000-0000-0000-0000-000000000000'::uuid));

-- The periods an application has used: one row per finalized invoice it discounted, written when
-- the invoice is finalized (never at draft, so a draft rebuilt any number of times uses nothing).
CREATE TABLE coupon_redemptions (
  application_id uuid NOT NULL REFERENCES coupon_applications (id),
  invoice_id     uuid NOT NULL REFERENCES invoices (id),
  redeemed_at    timestamptz NOT NULL,
  PRIMARY KEY (application_id, invoice_id)
);
CREATE INDEX coupon_redemptions_invoice_idx ON coupon_redemptions (invoice_id);

-- Tax rates per customer, on the whole invoice (meter NULL) or one meter's usage. Immutable:
-- invoice lines reference the rate they applied, so a change is an archive plus a new rate.
-- percentage: "20" is 20 %. A customer's active rates are all inclusive or all exclusive
-- (checked by the service under the customer's lock).
CREATE TABLE tax_rates (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id uuid NOT NULL REFERENCES customers (id),
  code        text NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
  percentage  numeric NOT NULL CHECK (percentage > 0 AND percentage < 100),
  inclusive   boolean NOT NULL,
  meter       text REFERENCES meters (code),
  created_at  timestamptz NOT NULL,
  archived_at timestamptz
);
CREATE UNIQUE INDEX tax_rates_active_code ON tax_rates (customer_id, code) WHERE archived_at IS NULL;

-- Discount and tax lines (src/domain/invoice-pipeline.ts). A discount line names the coupon
-- application; a tax line names its rate, the amount it applies to and whether it is contained in
-- the other lines (inclusive: then it does not add to the total).
ALTER TABLE invoice_lines
  DROP CONSTRAINT invoice_lines_type_check,
  ADD CONSTRAINT invoice_lines_type_check CHECK (type IN ('base_fee', 'usage', 'minimum_commitment_true_up', 'adjustment', 'interim_billed', 'discount', 'tax')),
  ADD COLUMN coupon_application_id uuid REFERENCES coupon_applications (id),
  ADD COLUMN tax_rate_id uuid REFERENCES tax_rates (id),
  ADD COLUMN tax_base numeric,
  ADD COLUMN tax_inclusive boolean,
  ADD CONSTRAINT invoice_lines_discount_check CHECK ((type = 'discount') = (coupon_application_id IS NOT NULL) AND (type <> 'discount' OR amount <= 0)),
  ADD CONSTRAINT invoice_lines_tax_check CHECK ((type = 'tax') = (tax_rate_id IS NOT NULL AND tax_base IS NOT NULL AND tax_inclusive IS NOT NULL));

ALTER TABLE reconciliation_findings
  DROP CONSTRAINT reconciliation_findings_kind_check,
  ADD CONSTRAINT reconciliation_findings_kind_check CHECK (kind IN ('usage_mismatch', 'amount_mismatch', 'missing_invoice',
    'charge_missing_at_provider', 'charge_unrecorded', 'double_charge', 'charged_void_invoice', 'discount_mismatch', 'tax_mismatch'));

-- Down Migration
DELETE FROM reconciliation_findings WHERE kind IN ('discount_mismatch', 'tax_mismatch');
ALTER TABLE reconciliation_findings
  DROP CONSTRAINT reconciliation_findings_kind_check,
  ADD CONSTRAINT reconciliation_findings_kind_check CHECK (kind IN ('usage_mismatch', 'amount_mismatch', 'missing_invoice',
    'charge_missing_at_provider', 'charge_unrecorded', 'double_charge', 'charged_void_invoice'));
ALTER TABLE invoice_lines
  DROP CONSTRAINT invoice_lines_tax_check,
  DROP CONSTRAINT invoice_lines_discount_check,
  DROP COLUMN tax_inclusive,
  DROP COLUMN tax_base,
  DROP COLUMN tax_rate_id,
  DROP COLUMN coupon_application_id,
  DROP CONSTRAINT invoice_lines_type_check,
  ADD CONSTRAINT invoice_lines_type_check CHECK (type IN ('base_fee', 'usage', 'minimum_commitment_true_up', 'adjustment', 'interim_billed'));
DROP TABLE tax_rates;
DROP TABLE coupon_redemptions;
DROP TABLE coupon_applications;
DROP TABLE coupons;
