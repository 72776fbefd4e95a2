-- Up Migration

-- Customer portal sessions: short-lived, read-only credentials scoped to one customer, like a
-- billing portal session. As with API keys the token itself is never stored: token_hash is
-- HMAC-SHA256(pepper, token) under the API-key pepper named by pepper_version. A session stops
-- working when revoked_at is set or expires_at has passed; rows stay for the audit trail.
CREATE TABLE portal_sessions (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id    uuid NOT NULL REFERENCES customers (id),
  token_hash     bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
  pepper_version integer NOT NULL CHECK (pepper_version > 0),
  expires_at     timestamptz NOT NULL,
  revoked_at     timestamptz,
  created_by     text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 200),
  created_at     timestamptz NOT NULL DEFAULT now(),
  CHECK (expires_at > created_at)
);
CREATE INDEX portal_sessions_customer_idx ON portal_sessions (customer_id, created_at);

-- Down Migration

DROP TABLE portal_sessions;
