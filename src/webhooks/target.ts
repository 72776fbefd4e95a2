import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { checkResolvedTarget, type TargetVerdict, type WebhookTargetPolicy } from '../domain/webhook-target-policy';

/*
 * The connecting half of the webhook target policy (src/domain/webhook-target-policy.ts): the
 * HTTP agents that delivery uses resolve each host name once, check every address it resolved to,
 * and hand exactly those addresses to the socket. A name that passed at registration and
 * re-points to 127.0.0.1 later (DNS rebinding) fails here, before any connection is opened, and
 * there is no second lookup between the check and the connect for it to slip through.
 *
 * IP literals never reach a lookup (Node connects to them directly): delivery checks the URL
 * itself first, with checkWebhookTarget. Agents keep no idle connections, so every delivery
 * resolves and checks afresh.
 */

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Every address a host name resolves to. Tests hand in their own to play DNS. */
export type Resolve = (hostname: string) => Promise<readonly ResolvedAddress[]>;

/** The system resolver (getaddrinfo: /etc/hosts, then DNS), as Node's HTTP client uses by default. */
export const systemResolve: Resolve = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** A connection refused by the target policy; no socket was opened. */
export class WebhookTargetRefused extends Error {
  constructor(verdict: Extract<TargetVerdict, { allowed: false }>) {
    super(`target refused (${verdict.refusal}): ${verdict.detail}`);
    this.name = 'WebhookTargetRefused';
  }
}

/** A `lookup` for sockets that resolves once and yields only addresses the policy allows. */
export function guardedLookup(policy: WebhookTargetPolicy, resolve: Resolve): LookupFunction {
  async function checked(hostname: string, family: number | undefined): Promise<ResolvedAddress[]> {
    const addresses = await resolve(hostname);
    const verdict = checkResolvedTarget(
      hostname,
      addresses.map((a) => a.address),
      policy,
    );
    if (!verdict.allowed) throw new WebhookTargetRefused(verdict);
    // Every address was checked; the socket may ask for one family only.
    const usable = family === 4 || family === 6 ? addresses.filter((a) => a.family === family) : [...addresses];
    if (usable.length === 0)
      throw Object.assign(new Error(`${hostname} has no IPv${family ?? ''} address`), { code: 'ENOTFOUND', hostname });
    return usable;
  }
  return (hostname, options, callback) => {
    const family = typeof options.family === 'number' ? options.family : undefined;
    checked(hostname, family).then(
      (addresses) => (options.all ? callback(null, addresses) : callback(null, addresses[0]!.address, addresses[0]!.family)),
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    );
  };
}

export interface GuardedAgents {
  'http:': http.Agent;
  'https:': https.Agent;
}

/** HTTP and HTTPS agents whose every connection goes through guardedLookup. */
export function guardedAgents(policy: WebhookTargetPolicy, resolve: Resolve = systemResolve): GuardedAgents {
  const lookup = guardedLookup(policy, resolve);
  return { 'http:': new http.Agent({ lookup, keepAlive: false }), 'https:': new https.Agent({ lookup, keepAlive: false }) };
}
