import type { Principal, Scope } from '../api/auth';
import { ProblemError } from '../api/problem';
import type { AuditActor } from '../db/audit';
import type { ApiKey } from './store';

export const actorOf = (principal: Principal): AuditActor => `key:${principal.keyId}`;

/**
 * No key can mint or widen a key beyond itself: the scopes granted must be ones the caller
 * holds, and a caller restricted to a customer can only grant keys restricted to that customer.
 * Returns the customer the new key is restricted to.
 */
export function grantable(principal: Principal, scopes: readonly Scope[] | undefined, customer: string | null | undefined): string | null | undefined {
  const missing = (scopes ?? []).filter((s) => !principal.scopes.includes(s));
  if (missing.length > 0) {
    throw new ProblemError('forbidden', `A key cannot grant scopes it does not hold: ${missing.join(', ')}.`, { reason: 'scope_escalation', scopes: missing });
  }
  if (!principal.customer) return customer;
  if (customer === undefined || customer === principal.customer.externalId) return principal.customer.externalId;
  throw new ProblemError(
    'forbidden',
    customer === null ? 'A key restricted to a customer cannot grant access to every customer.' : 'This API key is restricted to another customer.',
    { reason: 'customer_mismatch' },
  );
}

/** A customer-restricted caller sees only its customer's keys; others look absent, not forbidden. */
export function visibleKey(principal: Principal, key: ApiKey | undefined, id: string): ApiKey {
  if (!key || (principal.customer && key.customer?.id !== principal.customer.id)) throw new ProblemError('not_found', `No API key ${id}.`);
  return key;
}
