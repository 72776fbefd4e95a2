import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/*
 * Webhook signatures, Stripe-style, so receivers can use what they already know:
 *
 *   Meterflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
 *
 * The timestamp is signed with the body, so a captured request cannot be replayed later than
 * the receiver's tolerance window, nor re-dated. The HMAC key is the endpoint secret's UTF-8
 * bytes, exactly as shown at creation. A receiver verifies the RAW request body (before any JSON
 * parsing: re-serializing changes bytes), then deduplicates on Meterflow-Event-Id, because
 * delivery is at least once. Several v1 entries may appear (e.g. while a secret is rolled): the
 * request is authentic when any of them matches.
 */

export const signatureHeader = 'Meterflow-Signature';
export const eventIdHeader = 'Meterflow-Event-Id';

/** How far a signature's timestamp may be from the receiver's clock, either way. */
export const defaultToleranceSeconds = 300;

/** A new endpoint secret: 256 random bits, recognisable by its prefix when pasted somewhere. */
export const generateWebhookSecret = (): string => `whsec_${randomBytes(32).toString('base64url')}`;

const hmacHex = (secret: string, timestamp: number, body: string): string =>
  createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex');

/** The Meterflow-Signature header value for `body` sent at `at`. */
export function signWebhook(secret: string, body: string, at: Date): string {
  const t = Math.floor(at.getTime() / 1000);
  return `t=${t},v1=${hmacHex(secret, t, body)}`;
}

export type VerifyResult =
  { ok: true; timestamp: Date } | { ok: false; reason: 'malformed_header' | 'timestamp_out_of_tolerance' | 'signature_mismatch' };

export interface VerifyInput {
  /** The endpoint secret, or several while rolling from one to the next. */
  secret: string | readonly string[];
  /** The raw request body, byte for byte as received (decoded as UTF-8). */
  body: string;
  /** The Meterflow-Signature header value. */
  header: string | undefined;
  now: Date;
  toleranceSeconds?: number;
}

/**
 * For receivers (and our tests): accepts a request only when a v1 signature matches one of the
 * secrets and its timestamp is within the tolerance. Comparison is constant-time.
 */
export function verifyWebhook({ secret, body, header, now, toleranceSeconds = defaultToleranceSeconds }: VerifyInput): VerifyResult {
  const parsed = parseHeader(header);
  if (!parsed) return { ok: false, reason: 'malformed_header' };
  // The timestamp is checked before any HMAC is computed: stale requests cost nothing to reject.
  if (Math.abs(now.getTime() / 1000 - parsed.t) > toleranceSeconds) return { ok: false, reason: 'timestamp_out_of_tolerance' };
  const secrets = typeof secret === 'string' ? [secret] : secret;
  for (const s of secrets) {
    const expected = Buffer.from(hmacHex(s, parsed.t, body), 'hex');
    for (const candidate of parsed.v1) {
      if (candidate.length === expected.length && timingSafeEqual(candidate, expected))
        return { ok: true, timestamp: new Date(parsed.t * 1000) };
    }
  }
  return { ok: false, reason: 'signature_mismatch' };
}

function parseHeader(header: string | undefined): { t: number; v1: Buffer[] } | undefined {
  if (!header) return undefined;
  let t: number | undefined;
  const v1: Buffer[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) return undefined;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') {
      if (!/^\d{1,12}$/.test(value)) return undefined;
      t = Number(value);
    } else if (key === 'v1') {
      if (!/^[0-9a-f]{64}$/i.test(value)) return undefined;
      v1.push(Buffer.from(value, 'hex'));
    }
    // Other schemes (a future v2) are ignored, so receivers keep working when one is added.
  }
  return t === undefined || v1.length === 0 ? undefined : { t, v1 };
}
