import type { RequestHandler, Router } from 'express';
import type { Logger } from 'pino';
import { authenticate } from '../api/authenticate';
import { keysRouter } from '../api/routes/keys';
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
  verifier: KeyVerifier;
  cache: KeyCache<VerifiedKey>;
  /** The `/v1` authentication middleware for the app. */
  authenticate: RequestHandler;
  router: Router;
  close(): Promise<void>;
}

/** The API-keys chapter assembled and listening for key changes; `close()` stops listening. */
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
    verifier,
    cache,
    authenticate: authenticate({ verifier, limiter: new KeyRateLimiter(), failures: new AuthFailureLimiter(opts.authFailures), logger }),
    router: keysRouter(service, opts.clock),
    close: () => listener.close(),
  };
}
