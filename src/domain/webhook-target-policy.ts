import ipaddr from 'ipaddr.js';

/*
 * Where webhooks may be sent. A webhook URL is chosen by an API caller, possibly a customer's key,
 * and the worker POSTs to it from inside our network: without a policy, anyone who can register
 * an endpoint can make the worker call the payment simulator, the database, the cloud metadata
 * service (credentials) or anything else only reachable from inside (SSRF).
 *
 * So only public destinations are allowed: an IPv4 address that ipaddr.js classifies as
 * `unicast` (none of loopback, RFC 1918 private, link-local, CGNAT, multicast, broadcast,
 * unspecified, reserved or documentation ranges), an IPv6 address in global unicast space
 * (2000::/3) that it classifies as `unicast`, and IPv6 forms that embed an IPv4 address
 * (IPv4-mapped, IPv4-translated, NAT64 64:ff9b::/96, 6to4) only when the embedded address is
 * allowed. Host names that by standard or convention name internal machines (localhost and
 * *.localhost, single-label names, .local, .internal, .localdomain, .home.arpa) are refused as
 * written; any other name is allowed here and its resolved addresses are checked at delivery
 * (checkResolvedTarget), so a name that points, or later re-points, inward is refused too.
 *
 * An allow-list (WEBHOOK_ALLOWED_TARGETS) makes exceptions for local development: IP addresses
 * or CIDR ranges whose addresses are allowed, and host names allowed together with whatever they
 * resolve to. Cloud metadata endpoints are never allowed, listed or not: nothing legitimate
 * receives webhooks there, and they hand out credentials.
 *
 * Host names are compared in the WHATWG URL parser's canonical form (what `new URL()` yields and
 * Node's HTTP client connects to): it has already turned 0x7f.1, 0177.0.0.1 or 2130706433 into
 * 127.0.0.1, and the same parser reads the URL at registration and at delivery.
 */

/** Why an address is refused. */
type AddressRefusal =
  | 'metadata'
  | 'loopback'
  | 'private'
  | 'link_local'
  | 'unique_local'
  | 'carrier_grade_nat'
  | 'multicast'
  | 'broadcast'
  | 'unspecified'
  | 'reserved';

export type TargetRefusal = AddressRefusal | 'invalid_url' | 'unsupported_scheme' | 'credentials_in_url' | 'internal_hostname';

export type TargetVerdict = { allowed: true } | { allowed: false; refusal: TargetRefusal; detail: string };

/** The allow-list, parsed: exact host names, and address ranges. */
export interface WebhookTargetPolicy {
  readonly hosts: ReadonlySet<string>;
  readonly ranges: readonly (readonly [ipaddr.IPv4 | ipaddr.IPv6, number])[];
}

type Ip = ipaddr.IPv4 | ipaddr.IPv6;

const allowed: TargetVerdict = { allowed: true };
const refuse = (refusal: TargetRefusal, detail: string): TargetVerdict => ({ allowed: false, refusal, detail });

/** Cloud metadata services: AWS/GCP/Azure/OpenStack/DigitalOcean, AWS ECS task credentials, Alibaba, Oracle, AWS over IPv6. */
const METADATA_ADDRESSES = new Set(
  ['169.254.169.254', '169.254.170.2', '100.100.100.200', '192.0.0.192', 'fd00:ec2::254'].map((a) => ipaddr.parse(a).toNormalizedString()),
);
const METADATA_HOSTS = new Set(['metadata.google.internal', 'metadata.goog', 'metadata', 'instance-data', 'instance-data.ec2.internal']);

/** Special-use suffixes whose names resolve only inside a network (RFC 6762, ICANN's .internal, RFC 8375, /etc/hosts habit). */
const INTERNAL_SUFFIXES = ['.local', '.internal', '.localdomain', '.home.arpa'];

const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');
// The local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215) may embed IPv4 at several offsets, so only this one is unpacked.
const NAT64_WELL_KNOWN = ipaddr.parseCIDR('64:ff9b::/96');

const V4_REFUSALS: Record<string, AddressRefusal> = {
  unspecified: 'unspecified',
  broadcast: 'broadcast',
  multicast: 'multicast',
  linkLocal: 'link_local',
  loopback: 'loopback',
  carrierGradeNat: 'carrier_grade_nat',
  private: 'private',
};
const V6_REFUSALS: Record<string, AddressRefusal> = {
  unspecified: 'unspecified',
  linkLocal: 'link_local',
  multicast: 'multicast',
  loopback: 'loopback',
  uniqueLocal: 'unique_local',
  // fec0::/10, site-local: IPv6's first private range, deprecated but still routable inside some networks.
  deprecatedSiteLocal: 'private',
};

const LABELS: Record<AddressRefusal, string> = {
  metadata: 'a cloud metadata endpoint',
  loopback: 'a loopback address',
  private: 'a private-network address',
  link_local: 'a link-local address',
  unique_local: 'a unique local (private IPv6) address',
  carrier_grade_nat: 'a carrier-grade NAT (shared) address',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  unspecified: 'the unspecified address',
  reserved: 'a reserved or special-purpose address',
};

/** Host names as URLs carry them: lower case, brackets off IPv6, and no trailing dots ("localhost." is localhost). */
function normalizeHost(host: string): string {
  const h = host.toLowerCase();
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h.replace(/\.+$/, '');
}

const v4FromParts = (high: number, low: number): ipaddr.IPv4 => new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);

/** The IPv4 address an IPv6 address stands for, in the forms that route to it. */
function embeddedIPv4(ip: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const p = ip.parts;
  switch (ip.range()) {
    case 'ipv4Mapped':
    case 'rfc6145':
      return v4FromParts(p[6]!, p[7]!);
    case 'rfc6052':
      return ip.match(NAT64_WELL_KNOWN) ? v4FromParts(p[6]!, p[7]!) : undefined;
    case '6to4':
      return v4FromParts(p[1]!, p[2]!);
    default:
      return undefined;
  }
}

interface Finding {
  refusal: AddressRefusal;
  /** The IPv4 address an IPv6 one embeds, when that is what was refused. */
  via?: ipaddr.IPv4;
}

/** A metadata endpoint, written as itself or embedded in an IPv6 form. */
function isMetadata(ip: Ip): boolean {
  if (METADATA_ADDRESSES.has(ip.toNormalizedString())) return true;
  const v4 = ip.kind() === 'ipv6' ? embeddedIPv4(ip as ipaddr.IPv6) : undefined;
  return v4 !== undefined && METADATA_ADDRESSES.has(v4.toNormalizedString());
}

/** Why an address is refused, or undefined when it is allowed. */
function classify(ip: Ip, policy: WebhookTargetPolicy): Finding | undefined {
  if (isMetadata(ip)) return { refusal: 'metadata' };
  if (policy.ranges.some(([net, bits]) => net.kind() === ip.kind() && ip.match(net, bits))) return undefined;
  if (ip.kind() === 'ipv4') {
    const range = ip.range();
    return range === 'unicast' ? undefined : { refusal: V4_REFUSALS[range] ?? 'reserved' };
  }
  const v6 = ip as ipaddr.IPv6;
  const v4 = embeddedIPv4(v6);
  if (v4) {
    const inner = classify(v4, policy);
    return inner && { refusal: inner.refusal, via: v4 };
  }
  const range = v6.range();
  // Outside 2000::/3 ipaddr.js still says `unicast` for unassigned space such as the deprecated IPv4-compatible ::a.b.c.d.
  if (range === 'unicast' && v6.match(GLOBAL_UNICAST_V6)) return undefined;
  return { refusal: V6_REFUSALS[range] ?? 'reserved' };
}

function explain(shown: string, finding: Finding): string {
  const label = LABELS[finding.refusal];
  return finding.via ? `${shown}, which embeds ${finding.via.toString()}, ${label}` : `${shown}, ${label}`;
}

function checkIp(ip: Ip, shown: string, policy: WebhookTargetPolicy): TargetVerdict {
  const finding = classify(ip, policy);
  return finding ? refuse(finding.refusal, `the host is ${explain(shown, finding)}`) : allowed;
}

function checkName(name: string, policy: WebhookTargetPolicy): TargetVerdict {
  if (METADATA_HOSTS.has(name)) return refuse('metadata', `${name} is ${LABELS.metadata}`);
  if (policy.hosts.has(name)) return allowed;
  if (name === 'localhost' || name.endsWith('.localhost')) return refuse('internal_hostname', `${name} names this machine`);
  if (!name.includes('.'))
    return refuse('internal_hostname', `${name} is a single-label name, resolved through the local network's search domains`);
  const suffix = INTERNAL_SUFFIXES.find((s) => name.endsWith(s));
  if (suffix) return refuse('internal_hostname', `${name} is under ${suffix}, which names hosts inside a private network`);
  return allowed;
}

/**
 * Whether a webhook may be sent to `url` as written: scheme, credentials and host (an IP literal,
 * or a name). A name that passes still has its resolved addresses checked at delivery.
 */
export function checkWebhookTarget(url: string | URL, policy: WebhookTargetPolicy): TargetVerdict {
  let parsed: URL;
  try {
    parsed = typeof url === 'string' ? new URL(url) : url;
  } catch {
    return refuse('invalid_url', 'the URL cannot be parsed');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    return refuse('unsupported_scheme', `${parsed.protocol} is not http: or https:`);
  // Node's HTTP clients would not send them anyway, and user@host is a classic way to disguise the host.
  if (parsed.username || parsed.password)
    return refuse('credentials_in_url', 'the URL carries credentials (user:password@); authenticate requests with the signature instead');
  const host = normalizeHost(parsed.hostname);
  return ipaddr.isValid(host) ? checkIp(ipaddr.parse(host), host, policy) : checkName(host, policy);
}

/**
 * Whether the addresses `hostname` resolved to may be connected to: every one must be allowed,
 * since the client may try any of them. An allow-listed name is trusted with whatever it resolves
 * to, except a metadata endpoint.
 */
export function checkResolvedTarget(hostname: string, addresses: readonly string[], policy: WebhookTargetPolicy): TargetVerdict {
  const name = normalizeHost(hostname);
  const trusted = policy.hosts.has(name);
  for (const address of addresses) {
    if (!ipaddr.isValid(address))
      return refuse('invalid_url', `${name} resolved to ${JSON.stringify(address)}, which is not an IP address`);
    const ip = ipaddr.parse(address);
    const finding = trusted ? (isMetadata(ip) ? { refusal: 'metadata' as const } : undefined) : classify(ip, policy);
    if (finding) return refuse(finding.refusal, `${name} resolves to ${explain(address, finding)}`);
  }
  return allowed;
}

type Entry = { host: string } | { range: readonly [Ip, number] };

const single = (ip: Ip): Entry => ({ range: [ip, ip.kind() === 'ipv4' ? 32 : 128] });
const neverAllowed = (raw: string) => `${raw} is a cloud metadata endpoint, which is never allowed`;

function parseEntry(raw: string): Entry | string {
  const entry = raw.trim().toLowerCase();
  if (entry.includes('/'))
    return ipaddr.isValidCIDR(entry) ? { range: ipaddr.parseCIDR(entry) } : `${JSON.stringify(raw)} is not a valid CIDR range`;
  const host = normalizeHost(entry);
  if (ipaddr.isValid(host)) {
    const ip = ipaddr.parse(host);
    return isMetadata(ip) ? neverAllowed(raw) : single(ip);
  }
  let canonical: string | undefined;
  try {
    canonical = normalizeHost(new URL(`http://${host}/`).hostname);
  } catch {
    canonical = undefined;
  }
  // A port, a path or characters a URL would rewrite: the entry would never match the URL's host.
  if (canonical !== host) return `${JSON.stringify(raw)} is neither an IP address, a CIDR range nor a host name as URLs write it`;
  return METADATA_HOSTS.has(host) ? neverAllowed(raw) : { host };
}

/** Why an allow-list entry is invalid, or undefined when it is a host name, an IP address or a CIDR range. */
export function allowListEntryProblem(entry: string): string | undefined {
  const parsed = parseEntry(entry);
  return typeof parsed === 'string' ? parsed : undefined;
}

/** The policy for an allow-list of host names, IP addresses and CIDR ranges (none: only public targets). */
export function webhookTargetPolicy(allowList: readonly string[] = []): WebhookTargetPolicy {
  const hosts = new Set<string>();
  const ranges: (readonly [Ip, number])[] = [];
  for (const raw of allowList) {
    const entry = parseEntry(raw);
    if (typeof entry === 'string') throw new Error(`Invalid webhook allow-list entry: ${entry}`);
    if ('host' in entry) hosts.add(entry.host);
    else ranges.push(entry.range);
  }
  return { hosts, ranges };
}
