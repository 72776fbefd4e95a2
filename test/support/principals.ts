import type { Principal } from '../../src/keys/principal';

/** An unrestricted key that may write events, for tests that call the ingest service directly. */
export const eventWriter: Principal = {
  keyId: 'test',
  environment: 'test',
  scopes: ['events:write'],
  customer: null,
  limits: { ratePerSecond: 1000, burst: 1000, expiresAt: null },
};
