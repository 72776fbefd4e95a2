import type { Request, RequestHandler } from 'express';
import type { AuditActor } from '../db/audit';
import { auditActorOf, customerNamed, seesCustomer, seesCustomerId, type Principal, type Scope } from '../keys/principal';
import { ProblemError } from './problem';

/**
 * What a key restricted to one customer may do with an operation.
 * - `own_customer`: act for its own customer only. Every other customer, and everything another
 *   customer owns, is invisible to it: the answer is exactly the one for a customer or id that
 *   does not exist (404 for what the path or query names, an empty page for a list filter, 422
 *   `unknown_customer` for a customer named in a body), never 403, so nothing tells it what
 *   exists outside its customer.
 * - `shared`: allowed; the operation touches no customer's data (the meter and plan catalogs
 *   every customer shares, pricing arithmetic, the calling key itself).
 * - `forbidden`: 403 `customer_restricted`; the operation spans customers or changes what they share.
 */
export type RestrictedRule = 'own_customer' | 'shared' | 'forbidden';

export interface Rule {
  /** The OpenAPI operation, `METHOD /path`: one rule per operation, every operation has one. */
  operation: string;
  /** The scope the key must hold (403 `missing_scope` without it); null: any valid key. */
  scope: Scope | null;
  restricted: RestrictedRule;
  /**
   * Whether a customer portal session (src/portal) may call it: only the reads the portal page
   * makes. A session is also restricted to its customer, so `own_customer` confines it as any key.
   */
  portal: boolean;
}

const rule = (operation: string, scope: Scope | null, restricted: RestrictedRule, portal: 'portal' | null = null): Rule => ({
  operation,
  scope,
  restricted,
  portal: portal === 'portal',
});

/**
 * The authorization policy, resource × action: every `/v1` route is guarded by
 * `authorize(resource, action)` naming its entry here, and test/integration/authorization.test.ts
 * walks every operation of the OpenAPI document against it, so no route ships without a decision.
 */
export const policy = {
  customers: {
    create: rule('POST /v1/customers', 'billing:admin', 'forbidden'),
    list: rule('GET /v1/customers', 'billing:read', 'forbidden'),
    get: rule('GET /v1/customers/{externalId}', 'billing:read', 'own_customer', 'portal'),
  },
  meters: {
    create: rule('POST /v1/meters', 'billing:admin', 'forbidden'),
    list: rule('GET /v1/meters', 'billing:read', 'shared', 'portal'),
    get: rule('GET /v1/meters/{code}', 'billing:read', 'shared', 'portal'),
  },
  events: {
    ingest: rule('POST /v1/events', 'events:write', 'own_customer'),
  },
  usage: {
    read: rule('GET /v1/usage', 'usage:read', 'own_customer', 'portal'),
  },
  entitlements: {
    check: rule('POST /v1/entitlements/check', 'usage:read', 'own_customer', 'portal'),
  },
  pricing: {
    preview: rule('POST /v1/pricing/preview', 'billing:read', 'shared'),
  },
  plans: {
    create: rule('POST /v1/plans', 'billing:admin', 'forbidden'),
    list: rule('GET /v1/plans', 'billing:read', 'shared'),
    get: rule('GET /v1/plans/{code}', 'billing:read', 'shared', 'portal'),
  },
  coupons: {
    create: rule('POST /v1/coupons', 'billing:admin', 'forbidden'),
    list: rule('GET /v1/coupons', 'billing:read', 'forbidden'),
    get: rule('GET /v1/coupons/{code}', 'billing:read', 'forbidden'),
    apply: rule('POST /v1/customers/{externalId}/coupons', 'billing:admin', 'forbidden'),
    applications: rule('GET /v1/customers/{externalId}/coupons', 'billing:read', 'own_customer'),
  },
  tax_rates: {
    create: rule('POST /v1/customers/{externalId}/tax-rates', 'billing:admin', 'forbidden'),
    list: rule('GET /v1/customers/{externalId}/tax-rates', 'billing:read', 'own_customer'),
    archive: rule('POST /v1/customers/{externalId}/tax-rates/{code}/archive', 'billing:admin', 'forbidden'),
  },
  subscriptions: {
    create: rule('POST /v1/subscriptions', 'billing:admin', 'own_customer'),
    get: rule('GET /v1/subscriptions/{id}', 'billing:read', 'own_customer'),
    active: rule('GET /v1/customers/{externalId}/subscription', 'billing:read', 'own_customer', 'portal'),
    cancel: rule('POST /v1/subscriptions/{id}/cancel', 'billing:admin', 'own_customer'),
    change_plan: rule('POST /v1/subscriptions/{id}/change-plan', 'billing:admin', 'own_customer'),
    set_spend_thresholds: rule('PUT /v1/subscriptions/{id}/spend-thresholds', 'billing:admin', 'own_customer'),
    set_spend_cap: rule('POST /v1/subscriptions/{id}/spend-cap', 'billing:admin', 'own_customer'),
  },
  invoices: {
    list: rule('GET /v1/invoices', 'billing:read', 'own_customer', 'portal'),
    upcoming: rule('GET /v1/invoices/upcoming', 'billing:read', 'own_customer', 'portal'),
    get: rule('GET /v1/invoices/{id}', 'billing:read', 'own_customer', 'portal'),
    get_pdf: rule('GET /v1/invoices/{id}.pdf', 'billing:read', 'own_customer', 'portal'),
    get_html: rule('GET /v1/invoices/{id}.html', 'billing:read', 'own_customer', 'portal'),
    void: rule('POST /v1/invoices/{id}/void', 'billing:admin', 'forbidden'),
  },
  credits: {
    grant: rule('POST /v1/customers/{externalId}/credits', 'billing:admin', 'own_customer'),
    balance: rule('GET /v1/customers/{externalId}/credits', 'billing:read', 'own_customer', 'portal'),
    grants: rule('GET /v1/customers/{externalId}/credits/grants', 'billing:read', 'own_customer'),
    ledger: rule('GET /v1/customers/{externalId}/credits/ledger', 'billing:read', 'own_customer'),
    auto_top_up: rule('PUT /v1/customers/{externalId}/credits/auto-top-up', 'billing:admin', 'own_customer'),
    // Taking credit away is for the operator, never a customer's own key.
    void: rule('POST /v1/customers/{externalId}/credits/grants/{grantId}/void', 'billing:admin', 'forbidden'),
  },
  webhook_endpoints: {
    create: rule('POST /v1/webhook-endpoints', 'billing:admin', 'own_customer'),
    list: rule('GET /v1/webhook-endpoints', 'billing:admin', 'own_customer'),
    get: rule('GET /v1/webhook-endpoints/{id}', 'billing:admin', 'own_customer'),
    disable: rule('DELETE /v1/webhook-endpoints/{id}', 'billing:admin', 'own_customer'),
  },
  reconciliations: {
    start: rule('POST /v1/reconciliations', 'billing:admin', 'forbidden'),
    get: rule('GET /v1/reconciliations/{id}', 'billing:read', 'forbidden'),
    approve: rule('POST /v1/reconciliations/{id}/approve', 'billing:admin', 'forbidden'),
    retry: rule('POST /v1/reconciliations/{id}/retry', 'billing:admin', 'forbidden'),
    dismiss: rule('POST /v1/reconciliations/{id}/dismiss', 'billing:admin', 'forbidden'),
  },
  portal_sessions: {
    create: rule('POST /v1/portal-sessions', 'billing:admin', 'forbidden'),
    revoke: rule('DELETE /v1/portal-sessions/{id}', 'billing:admin', 'forbidden'),
    current: rule('GET /v1/portal-sessions/current', null, 'shared', 'portal'),
  },
  keys: {
    current: rule('GET /v1/keys/current', null, 'shared'),
    create: rule('POST /v1/keys', 'keys:admin', 'own_customer'),
    list: rule('GET /v1/keys', 'keys:admin', 'own_customer'),
    get: rule('GET /v1/keys/{id}', 'keys:admin', 'own_customer'),
    update: rule('PATCH /v1/keys/{id}', 'keys:admin', 'own_customer'),
    revoke: rule('POST /v1/keys/{id}/revoke', 'keys:admin', 'own_customer'),
    rotate: rule('POST /v1/keys/{id}/rotate', 'keys:admin', 'own_customer'),
  },
} as const satisfies Record<string, Record<string, Rule>>;

export type Policy = typeof policy;
export type Resource = keyof Policy;
export type Action<R extends Resource> = keyof Policy[R] & string;

/** Why a verified key may not do something: 403 with one of these reasons. */
function refusal(principal: Principal, entry: Rule): ProblemError | undefined {
  if (principal.portal && !entry.portal) {
    return new ProblemError('forbidden', 'A portal session may only read what the customer portal shows.', { reason: 'portal_read_only' });
  }
  if (entry.scope !== null && !principal.scopes.includes(entry.scope)) {
    return new ProblemError('forbidden', `This API key lacks the "${entry.scope}" scope.`, {
      reason: 'missing_scope',
      required_scope: entry.scope,
    });
  }
  if (principal.customer && entry.restricted === 'forbidden') {
    return new ProblemError('forbidden', 'A key restricted to one customer may not do this: it concerns every customer.', {
      reason: 'customer_restricted',
    });
  }
  return undefined;
}

/** A request's authorization decision: the verified key, and what it may see. */
export class Access {
  constructor(readonly principal: Principal) {}

  /** How the audit log names this caller. */
  get actor(): AuditActor {
    return auditActorOf(this.principal);
  }

  /** The customer the request names, or a restricted key's own when it names none. */
  customerNamed(requested: string | undefined): string | undefined {
    return customerNamed(this.principal, requested);
  }

  /** Whether the key may see the customer with this external id (src/keys/principal.ts). */
  seesCustomer(externalId: string): boolean {
    return seesCustomer(this.principal, externalId);
  }

  /** Whether the key may see data owned by the customer with this internal id (src/keys/principal.ts). */
  seesCustomerId(customerId: string | null): boolean {
    return seesCustomerId(this.principal, customerId);
  }

  /** Whether this key would be let through another operation (e.g. to show what a 409 conflicts with). */
  allows<R extends Resource>(resource: R, action: Action<R>): boolean {
    return refusal(this.principal, policy[resource][action] as Rule) === undefined;
  }
}

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by the authentication middleware from a verified API key. */
    principal?: Principal;
    /** Set by `authorize`: the only way a route reaches the caller. */
    access?: Access;
  }
}

/**
 * The one route guard: 401 without a verified key, 403 when the policy entry refuses the key,
 * otherwise `req.access` for the handler, which confines an `own_customer` operation to what
 * the key may see.
 */
export function authorize<R extends Resource>(resource: R, action: Action<R>): RequestHandler {
  const entry = policy[resource][action] as Rule;
  return (req, _res, next) => {
    const principal = req.principal;
    if (!principal) throw new ProblemError('unauthenticated', 'An API key is required.', { reason: 'missing_key' });
    const refused = refusal(principal, entry);
    if (refused) throw refused;
    req.access = new Access(principal);
    next();
  };
}

/** The decision `authorize` made for this request; a route without the guard fails loudly here. */
export function accessOf(req: Request): Access {
  if (!req.access) throw new Error(`${req.method} ${req.path} reached its handler without an authorization decision`);
  return req.access;
}
