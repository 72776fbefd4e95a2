import type { Request, RequestHandler } from 'express';
import { ProblemError } from './problem';

export const scopes = ['events:write', 'usage:read', 'billing:read', 'billing:admin', 'keys:admin'] as const;
export type Scope = (typeof scopes)[number];

/** Who is calling: set on the request by the authentication middleware from a verified API key. */
export interface Principal {
  keyId: string;
  environment: 'live' | 'test';
  scopes: readonly Scope[];
  /** When the key is restricted to one customer: that customer's internal id and external id. */
  customer: { id: string; externalId: string } | null;
}

declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
  }
}

export function principalOf(req: Request): Principal {
  if (!req.principal) throw new ProblemError('unauthenticated', 'An API key is required.', { reason: 'missing_key' });
  return req.principal;
}

/** Route guard: 401 without a verified key, 403 when the key lacks the scope. */
export function requireScope(scope: Scope): RequestHandler {
  return (req, _res, next) => {
    const principal = principalOf(req);
    if (!principal.scopes.includes(scope)) {
      throw new ProblemError('forbidden', `This API key lacks the "${scope}" scope.`, { required_scope: scope });
    }
    next();
  };
}

/**
 * Customer-restricted keys may act only on their own customer. Returns the external id to act
 * on: the requested one, or the key's own when the request names none.
 */
export function actingCustomer(principal: Principal, requested: string | undefined): string | undefined {
  if (!principal.customer) return requested;
  if (requested !== undefined && requested !== principal.customer.externalId) {
    throw new ProblemError('forbidden', 'This API key is restricted to another customer.', { reason: 'customer_mismatch' });
  }
  return principal.customer.externalId;
}
