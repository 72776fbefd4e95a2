import type { AuditActor } from '../db/audit';

export const scopes = ['events:write', 'usage:read', 'billing:read', 'billing:admin', 'keys:admin'] as const;
export type Scope = (typeof scopes)[number];

/** Who is calling: set on the request by the authentication middleware from a verified API key. */
export interface Principal {
  keyId: string;
  environment: 'live' | 'test';
  scopes: readonly Scope[];
  /** When the key is restricted to one customer: that customer's internal id and external id. */
  customer: { id: string; externalId: string } | null;
  /** The key's own limits: nothing it grants may exceed them (src/keys/service.ts). */
  limits: { ratePerSecond: number; burst: number; expiresAt: Date | null };
  /**
   * Set for a customer portal session (src/portal), whose keyId is the session id: a read-only
   * credential the authorization policy lets through only the operations it opens to the portal.
   */
  portal?: true;
}

/**
 * Who acts on a use case, as every feature service takes it: a verified API key, bounded by its
 * scopes and its customer; or the admin CLI, a workflow (an activity acting on what it decided,
 * e.g. a plan change asked through the Temporal UI) or the system itself, which are not.
 */
export type Actor = Principal | 'cli' | 'system' | `workflow:${string}`;

/** How the audit log names an actor. */
export const auditActorOf = (actor: Actor): AuditActor => (typeof actor === 'string' ? actor : `key:${actor.keyId}`);

/** The customer a request names, or a restricted key's own when it names none. */
export const customerNamed = (actor: Actor, requested: string | undefined): string | undefined =>
  requested ?? (typeof actor === 'string' ? undefined : (actor.customer?.externalId ?? undefined));

/** Whether the actor may see the customer with this external id: any, unless a key is restricted to another. */
export const seesCustomer = (actor: Actor, externalId: string): boolean =>
  typeof actor === 'string' || !actor.customer || actor.customer.externalId === externalId;

/**
 * Whether the actor may see data owned by the customer with this internal id; null stands for
 * data of no single customer (e.g. a global webhook endpoint), seen only by unrestricted actors.
 */
export const seesCustomerId = (actor: Actor, customerId: string | null): boolean =>
  typeof actor === 'string' || !actor.customer || actor.customer.id === customerId;
