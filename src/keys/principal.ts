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
}
