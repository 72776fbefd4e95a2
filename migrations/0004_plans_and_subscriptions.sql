-- Up Migration

-- Plans are immutable: a price change is a new plan with a new code. Invoices and running billing
-- workflows refer to a plan by its code, and must be able to read back exactly the terms they
-- were billed under, months later; editing a plan in place would silently rewrite the past.
-- Only the display name may change. The pricing part and the limits are validated at the edge
-- (src/domain/plan.ts: zod, including that every meter exists); amounts stay decimal strings in
-- jsonb and NUMERIC in columns. NULL rounding means the default (half_up); NULL fees mean none.
CREATE TABLE plans (
  code               text PRIMARY KEY CHECK (code ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
  currency           char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  rounding           text,
  base_fee           numeric CHECK (base_fee >= 0),
  minimum_commitment numeric CHECK (minimum_commitment >= 0),
  charges            jsonb NOT NULL CHECK (jsonb_typeof(charges) = 'array'),
  limits             jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(limits) = 'array'),
  -- { "kind": "calendar_month" } or { "kind": "duration", "iso": "PT5M" }
  billing_interval   jsonb NOT NULL CHECK (billing_interval->>'kind' IN ('calendar_month', 'duration')),
  created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION plans_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'plan terms are immutable (% refused): create a plan with a new code instead', TG_OP
    USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER plans_are_immutable
  BEFORE UPDATE OF code, currency, rounding, base_fee, minimum_commitment, charges, limits, billing_interval OR DELETE ON plans
  FOR EACH ROW EXECUTE FUNCTION plans_refuse_change();

-- A customer's subscription to a plan. anchor is the subscription start: every billing period is
-- derived from it (src/domain/periods.ts). plan_code is the current plan; its history is in
-- subscription_changes. canceled_at is when the cancellation was recorded, cancel_at the instant
-- billing ends (the final period is cut short there).
CREATE TABLE subscriptions (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id uuid NOT NULL REFERENCES customers (id),
  plan_code   text NOT NULL REFERENCES plans (code),
  anchor      timestamptz NOT NULL,
  status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'canceled')),
  cancel_at   timestamptz,
  canceled_at timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CHECK ((status = 'canceled') = (canceled_at IS NOT NULL)),
  CHECK (status = 'active' OR cancel_at IS NOT NULL)
);
-- At most one active subscription per customer: its billing workflow's id is
-- `billing/<customer external id>`, so a second one would have no workflow of its own.
CREATE UNIQUE INDEX subscriptions_one_active_per_customer ON subscriptions (customer_id) WHERE status = 'active';
CREATE INDEX subscriptions_customer_idx ON subscriptions (customer_id, created_at);

-- Every plan change of a subscription, written by the billing workflow's changePlan update
-- (through an activity) in the same transaction that moves subscriptions.plan_code.
CREATE TABLE subscription_changes (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription_id uuid NOT NULL REFERENCES subscriptions (id),
  from_plan       text NOT NULL REFERENCES plans (code),
  to_plan         text NOT NULL REFERENCES plans (code),
  effective_at    timestamptz NOT NULL,
  actor           text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
  recorded_at     timestamptz NOT NULL DEFAULT now(),
  CHECK (from_plan <> to_plan)
);
CREATE INDEX subscription_changes_subscription_idx ON subscription_changes (subscription_id, effective_at);

-- Down Migration
DROP TABLE subscription_changes;
DROP TABLE subscriptions;
DROP TRIGGER plans_are_immutable ON plans;
DROP FUNCTION plans_refuse_change();
DROP TABLE plans;
