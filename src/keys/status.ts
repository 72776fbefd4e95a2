import type { ApiKey } from './store';

export type KeyStatus = 'active' | 'revoked' | 'expired';

/** Revocation wins over expiry: a revoked key never comes back by moving its expiry. */
export function keyStatus(key: Pick<ApiKey, 'revokedAt' | 'expiresAt'>, now: Date): KeyStatus {
  if (key.revokedAt) return 'revoked';
  if (key.expiresAt && key.expiresAt.getTime() <= now.getTime()) return 'expired';
  return 'active';
}
