/**
 * Where a grant's expiry is scheduled: in production a durable Temporal timer, one workflow per
 * grant (src/workflows/credit-expiry.ts). Callers invoke it after the grant is committed;
 * implementations must be idempotent, so a request repeated after a failure here converges.
 */
export interface CreditExpiryTimers {
  schedule(grant: { id: string; expiresAt: Date }): Promise<void>;
}
