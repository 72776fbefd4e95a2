import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import type { Peppers } from '../keys/pepper';
import type { Principal } from '../keys/principal';
import type { KeyVerifier, Verification } from '../keys/verifier';
import { findSessionByHashes } from './store';
import { PORTAL_TOKEN_PREFIX, isPortalTokenShaped } from './token';

/** A portal page makes about a dozen reads per load (more with more meters): room for a person reloading, not for a scraper. */
const PORTAL_RATE = { ratePerSecond: 50, burst: 100 } as const;

/** What a portal session may read with: restricted to its customer, marked `portal` for the policy. */
const READ_SCOPES = Object.freeze(['usage:read', 'billing:read'] as const);

/**
 * Verifies portal session tokens. Unlike API keys there is no cache: every request reads the
 * session row (one unique-index lookup), so a revocation holds at the very next request and
 * portal traffic, a person's page loads, never reaches the ingest hot path anyway.
 */
export class PortalSessionVerifier {
  constructor(private readonly deps: { pool: Pool; peppers: Peppers; clock: Clock }) {}

  async verify(presented: string, admit?: () => Promise<void>): Promise<Verification> {
    if (!isPortalTokenShaped(presented)) return { ok: false, reason: 'malformed_key' };
    const { pool, peppers, clock } = this.deps;
    if (admit) await admit();
    const session = await findSessionByHashes(
      pool,
      peppers.versions.map((v) => peppers.digest(presented, v)),
    );
    if (!session) return { ok: false, reason: 'invalid_key', cause: 'unknown' };
    if (session.revokedAt) return { ok: false, reason: 'invalid_key', cause: 'revoked', keyId: session.id };
    if (session.expiresAt.getTime() <= clock.now().getTime())
      return { ok: false, reason: 'invalid_key', cause: 'expired', keyId: session.id };
    const principal: Principal = Object.freeze({
      keyId: session.id,
      environment: 'live',
      scopes: READ_SCOPES,
      customer: session.customer,
      limits: Object.freeze({ ...PORTAL_RATE, expiresAt: session.expiresAt }),
      portal: true,
    });
    return {
      ok: true,
      key: { id: session.id, principal, ...PORTAL_RATE, expiresAt: session.expiresAt.getTime(), revoked: false },
    };
  }
}

/** One verifier for the `/v1` guard: portal tokens by their prefix, everything else as an API key. */
export const credentialVerifier = (keys: KeyVerifier, portal: PortalSessionVerifier): Pick<KeyVerifier, 'verify'> => ({
  verify: (presented, admit) =>
    presented?.startsWith(PORTAL_TOKEN_PREFIX) ? portal.verify(presented, admit) : keys.verify(presented, admit),
});
