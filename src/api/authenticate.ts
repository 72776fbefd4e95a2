import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import type { AuthFailureLimiter, RateDecision, KeyRateLimiter } from '../keys/rate-limiter';
import type { KeyVerifier, RefusalReason } from '../keys/verifier';
import { ProblemError } from './problem';

const refusals: Record<RefusalReason, string> = {
  missing_key: 'Send an API key as `Authorization: Bearer <key>` (or `X-API-Key: <key>`).',
  malformed_key: 'The API key is not in the expected format.',
  bad_checksum: 'The API key has a bad checksum: it was probably mistyped or truncated.',
  invalid_key: 'The API key is not valid.',
};

/** The key from `Authorization: Bearer <key>`, else `X-API-Key`. */
function presentedKey(req: Request): string | undefined {
  const authorization = req.headers.authorization;
  if (authorization !== undefined) {
    // Anything but a bearer token is still presented, and refused as malformed.
    return /^Bearer +(\S+) *$/i.exec(authorization)?.[1] ?? authorization;
  }
  const header = req.headers['x-api-key'];
  return typeof header === 'string' ? header.trim() : undefined;
}

/** IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers): one item per window. */
function setRateLimitHeaders(res: Response, decision: RateDecision): void {
  res.setHeader('RateLimit-Policy', decision.windows.map((w) => `"${w.policy}";q=${w.quota};w=${w.windowSeconds}`).join(', '));
  res.setHeader(
    'RateLimit',
    decision.windows.map((w) => `"${w.policy}";r=${Math.max(0, w.remaining)};t=${Math.max(0, Math.ceil(w.resetMs / 1000))}`).join(', '),
  );
}

const retryAfterSeconds = (decision: RateDecision) => Math.max(1, Math.ceil(decision.retryAfterMs / 1000));

function tooManyFailures(res: Response, decision: RateDecision): ProblemError {
  setRateLimitHeaders(res, decision);
  const retryAfter = retryAfterSeconds(decision);
  return new ProblemError(
    'rate_limited',
    `Too many failed authentications from this address; retry in ${retryAfter} s.`,
    { reason: 'auth_failures', retry_after: retryAfter },
    { 'Retry-After': String(retryAfter) },
  );
}

/**
 * `/v1` guard: verifies the API key (in memory, see KeyVerifier), sets `req.principal`, then
 * charges the key's rate limit. Refusals are 401 with a reason that never tells whether a key
 * exists; over the limit is 429 with Retry-After. Every authenticated response carries the
 * RateLimit headers, so clients can pace themselves before hitting 429.
 *
 * Failed authentications (a presented key refused) are limited per client address (the socket's: trust proxy is off):
 * an address that spent them gets 429 before its key is looked at, and a key lookup in the
 * database is charged before it runs (refunded when the key is valid), so many distinct unknown
 * keys cannot buy more lookups than the limit.
 */
export function authenticate(deps: {
  /** API keys, and portal session tokens (src/portal/verifier.ts) */
  verifier: Pick<KeyVerifier, 'verify'>;
  limiter: KeyRateLimiter;
  failures: AuthFailureLimiter;
  logger: Logger;
}): RequestHandler {
  return async (req, res, next) => {
    const address = req.socket.remoteAddress ?? 'unknown';
    const standing = await deps.failures.check(address);
    if (!standing.allowed) throw tooManyFailures(res, standing);
    let lookupCharged = false;
    const verification = await deps.verifier.verify(presentedKey(req), async () => {
      lookupCharged = true;
      const decision = await deps.failures.charge(address);
      if (!decision.allowed) throw tooManyFailures(res, decision);
    });
    if (!verification.ok) {
      // A request without a key attempted nothing and cost nothing: only presented keys count.
      if (verification.reason !== 'missing_key') {
        setRateLimitHeaders(res, await (lookupCharged ? deps.failures.check(address) : deps.failures.charge(address)));
      }
      if (verification.cause) deps.logger.debug({ keyId: verification.keyId, cause: verification.cause }, 'API key refused');
      // RFC 6750: a request without credentials gets the challenge but no error code.
      const challenge =
        verification.reason === 'missing_key' ? 'Bearer realm="meterflow"' : 'Bearer realm="meterflow", error="invalid_token"';
      throw new ProblemError(
        'unauthenticated',
        refusals[verification.reason],
        { reason: verification.reason },
        { 'WWW-Authenticate': challenge },
      );
    }
    if (lookupCharged) await deps.failures.refund(address);
    const { key } = verification;
    const decision = await deps.limiter.consume(key.id, key);
    setRateLimitHeaders(res, decision);
    if (!decision.allowed) {
      const retryAfter = retryAfterSeconds(decision);
      throw new ProblemError(
        'rate_limited',
        `This API key is over its rate limit; retry in ${retryAfter} s.`,
        { retry_after: retryAfter },
        {
          'Retry-After': String(retryAfter),
        },
      );
    }
    req.principal = key.principal;
    next();
  };
}
