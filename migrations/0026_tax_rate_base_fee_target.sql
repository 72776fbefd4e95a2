-- Up Migration

-- A tax rate may tax only the charges of no meter: the base fee and the minimum-commitment true-up
-- (one group on the invoice, net of its discounts). Not together with a meter.
ALTER TABLE tax_rates ADD COLUMN base_fee boolean NOT NULL DEFAULT false,
  ADD CONSTRAINT tax_rates_one_target CHECK (NOT (base_fee AND meter IS NOT NULL));

-- Down Migration
ALTER TABLE tax_rates DROP CONSTRAINT tax_rates_one_target, DROP COLUMN base_fee;
