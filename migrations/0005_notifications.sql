-- Up Migration

-- Where notifications are POSTed. customer_id NULL makes the endpoint global: it receives every
-- customer's notifications (an operator's own backend that emails customers, say); a customer's
-- endpoint receives only that customer's. An endpoint is never deleted, only disabled, so the
-- outbox can always say where a past notification went.
--
-- Unlike API keys, the secret is stored as issued, not hashed: it is the HMAC key with which the
-- notify activity signs each request (src/activities/webhook-signature.ts), and a hash cannot sign.
-- It is shown to the caller once, at creation, and never returned by the API afterwards.
CREATE TABLE webhook_endpoints (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id uuid REFERENCES customers (id),
  url         text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2048),
  secret      text NOT NULL CHECK (length(secret) >= 32),
  created_at  timestamptz NOT NULL DEFAULT now(),
  disabled_at timestamptz
);
-- The notify activity's one access path: the active endpoints of one customer plus the global ones.
CREATE INDEX webhook_endpoints_active_idx ON webhook_endpoints (customer_id) WHERE disabled_at IS NULL;

-- The outbox: one row per notification, written by the notify activity before it delivers, and
-- updated after every delivery attempt. The natural key is the business fact being announced
-- (this threshold of this meter was crossed in this period of this subscription), never a
-- Temporal run or activity id: a retried activity, a replayed workflow or a reset from the UI
-- finds the existing row instead of creating a second notification. id is the event id receivers
-- deduplicate on (header Meterflow-Event-Id), since delivery is at least once.
--
-- status: pending (not yet accepted by every endpoint; attempts > 0 with last_error means it is
-- being retried), delivered (every active endpoint answered 2xx), failed (an endpoint refused it
-- with a 4xx that retrying cannot fix), no_endpoint (nothing to deliver to when it was raised).
-- delivered_endpoints lists the endpoints that already accepted it, so a retry after a partial
-- failure goes only to the others.
CREATE TABLE notifications (
  id                  uuid PRIMARY KEY,
  kind                text NOT NULL CHECK (kind IN ('threshold_crossed')),
  subscription_id     uuid NOT NULL REFERENCES subscriptions (id),
  period_start        timestamptz NOT NULL,
  meter               text NOT NULL REFERENCES meters (code),
  threshold           text NOT NULL CHECK (length(threshold) BETWEEN 1 AND 64),
  payload             jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
  status              text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed', 'no_endpoint')),
  attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  delivered_endpoints uuid[] NOT NULL DEFAULT '{}',
  last_error          text,
  last_attempt_at     timestamptz,
  delivered_at        timestamptz,
  created_at          timestamptz NOT NULL,
  UNIQUE (subscription_id, period_start, meter, threshold),
  CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
-- Operators look for what is stuck: undelivered notifications, oldest first.
CREATE INDEX notifications_undelivered_idx ON notifications (created_at) WHERE status <> 'delivered';

-- Down Migration
DROP TABLE notifications;
DROP TABLE webhook_endpoints;
