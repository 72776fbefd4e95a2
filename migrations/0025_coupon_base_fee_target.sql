-- Up Migration

-- A coupon may target the charges that belong to no meter: the base fee and the minimum-commitment
-- true-up (one group on the invoice). base_fee: true discounts that group, alone or with `meters`;
-- NULL as before (with meters NULL too: everything).
ALTER TABLE coupons ADD COLUMN base_fee boolean CHECK (base_fee);

-- Down Migration
ALTER TABLE coupons DROP COLUMN base_fee;
