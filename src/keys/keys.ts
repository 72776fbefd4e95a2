import type { Logger } from 'pino';
import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import { KeyCache } from './cache';
import { KeyInvalidationListener } from './invalidation-listener';
import type { Peppers } from './pepper';
import { AuthFailureLimiter, KeyRateLimiter, type AuthFailurePolicy } from './rate-limiter';
import { KeyService } from './service';
import { KeyVerifier, type VerifiedKey } from './verifier';

export interface KeysOptions {
  pool: Pool;
  /** For the dedicated LISTEN connection. */
  databaseUrl: string;
  peppers: Peppers;
  clock: Clock;
  logger: Logger;
  cache: { ttlSeconds: number; maxEntries: number };
  defaults: { ratePerSecond: number; burst: number };
  /** Failed authentications allowed per client address; src/keys/rate-limiter.ts has the default. */
  authFailures?: AuthFailurePolicy;
}

export interface Keys {
  service: KeyService;
  /** The HMAC peppers keys are stored under; portal session tokens (src/portal) are hashed with them too. */
  peppers: Peppers;
  verifier: KeyVerifier;
  cache: KeyCache<VerifiedKey>;
  /** Each key's request rate, charged on every authenticated request. */
  limiter: KeyRateLimiter;
  /** Failed authentications per client address. */
  failures: AuthFailureLimiter;
  close(): Promise<void>;
}

/**
 * The API-keys machinery assembled and listening for key changes; `close()` stops listening.
 * The app builds the authentication middleware and the keys routes from it (src/main/api-app.ts).
 */
export async function startKeys(opts: KeysOptions): Promise<Keys> {
  const logger = opts.logger.child({ component: 'api-keys' });
  const cache = new KeyCache<VerifiedKey>({
    ttlMs: opts.cache.ttlSeconds * 1000,
    maxEntries: opts.cache.maxEntries,
    maxUnknown: opts.cache.maxEntries,
  });
  const listener = new KeyInvalidationListener({ databaseUrl: opts.databaseUrl, cache, logger });
  await listener.start();
  const service = new KeyService({
    pool: opts.pool,
    peppers: opts.peppers,
    clock: opts.clock,
    defaults: opts.defaults,
    onChanged: (id) => cache.evict(id),
  });
  const verifier = new KeyVerifier({ pool: opts.pool, peppers: opts.peppers, cache, clock: opts.clock, logger });
  return {
    service,
    peppers: opts.peppers,
    verifier,
    cache,
    limiter: new KeyRateLimiter(),
    failures: new AuthFailureLimiter(opts.authFailures),
    close: () => listener.close(),
  };
}
