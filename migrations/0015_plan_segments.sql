-- Up Migration

-- How a plan bills a segment shorter than its period (a plan change, a cancellation): NULL means
-- the default, prorated to the millisecond. And how its tiers count usage of earlier segments of
-- the same period: NULL means the default, one ladder shared by the whole period. Plans stay
-- immutable: the trigger of 0004 lists its columns, so it is re-created with these two.
ALTER TABLE plans
  ADD COLUMN proration text CHECK (proration IN ('prorated', 'full', 'none')),
  ADD COLUMN tiers_across_segments text CHECK (tiers_across_segments IN ('shared', 'per_segment'));
DROP TRIGGER plans_are_immutable ON plans;
CREATE TRIGGER plans_are_immutable
  BEFORE UPDATE OF code, currency, rounding, base_fee, minimum_commitment, charges, limits, billing_interval, proration,
    tiers_across_segments OR DELETE ON plans
  FOR EACH ROW EXECUTE FUNCTION plans_refuse_change();

-- The segment a line bills when its period is split by plan changes: the plan and the half-open
-- [segment_start, segment_end). All three or none: an unsplit period's lines carry no segment.
ALTER TABLE invoice_lines
  ADD COLUMN segment_plan_code text REFERENCES plans (code),
  ADD COLUMN segment_start timestamptz,
  ADD COLUMN segment_end timestamptz,
  ADD CONSTRAINT invoice_lines_segment_check CHECK (
    (segment_plan_code IS NULL AND segment_start IS NULL AND segment_end IS NULL)
    OR (segment_plan_code IS NOT NULL AND segment_start IS NOT NULL AND segment_end > segment_start));

-- A plan change may be scheduled (a downgrade takes effect at the period end): effective_at then
-- lies ahead and subscriptions.plan_code still names the plan in force until the billing workflow
-- applies the change at the boundary (applied_at). At most one change may be pending at a time.
ALTER TABLE subscription_changes ADD COLUMN applied_at timestamptz;
UPDATE subscription_changes SET applied_at = recorded_at;
CREATE UNIQUE INDEX subscription_changes_one_pending ON subscription_changes (subscription_id) WHERE applied_at IS NULL;

-- Down Migration
DROP INDEX subscription_changes_one_pending;
DELETE FROM subscription_changes WHERE applied_at IS NULL;
ALTER TABLE subscription_changes DROP COLUMN applied_at;
ALTER TABLE invoice_lines
  DROP CONSTRAINT invoice_lines_segment_check,
  DROP COLUMN segment_end,
  DROP COLUMN segment_start,
  DROP COLUMN segment_plan_code;
DROP TRIGGER plans_are_immutable ON plans;
CREATE TRIGGER plans_are_immutable
  BEFORE UPDATE OF code, currency, rounding, base_fee, minimum_commitment, charges, limits, billing_interval OR DELETE ON plans
  FOR EACH ROW EXECUTE FUNCTION plans_refuse_change();
ALTER TABLE plans DROP COLUMN tiers_across_segments, DROP COLUMN proration;
