import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { Principal } from './principal';
import type { Clock } from '../clock';
import { isConnectionError } from '../db/connection-errors';
import type { Pool } from '../db/pool';
import type { KeyCache } from './cache';
import { KEY_LENGTH, parseKey } from './format';
import type { Peppers } from './pepper';
import { findKeyByHashes, rehashKey, type StoredKey } from './store';

/** What the cache holds for a known key: enough to authorize and rate-limit without SQL. */
export interface VerifiedKey {
  id: string;
  principal: Principal;
  ratePerSecond: number;
  burst: number;
  expiresAt: number | null;
  revoked: boolean;
}

/**
 * Reasons a client sees. Unknown, revoked and expired keys share `invalid_key`, so the answer
 * never tells whether a key exists; the precise reason goes only to the server log.
 */
export type RefusalReason = 'missing_key' | 'malformed_key' | 'bad_checksum' | 'invalid_key';

export type Verification =
  { ok: true; key: VerifiedKey } | { ok: false; reason: RefusalReason; cause?: 'unknown' | 'revoked' | 'expired'; keyId?: string };

export interface VerifierDeps {
  pool: Pool;
  peppers: Peppers;
  cache: KeyCache<VerifiedKey>;
  clock: Clock;
  logger: Logger;
}

function toVerified(k: StoredKey): VerifiedKey {
  return {
    id: k.id,
    principal: Object.freeze({
      keyId: k.id,
      environment: k.environment,
      scopes: Object.freeze([...k.scopes]),
      customer: k.customer,
      limits: Object.freeze({ ratePerSecond: k.ratePerSecond, burst: k.burst, expiresAt: k.expiresAt }),
    }),
    ratePerSecond: k.ratePerSecond,
    burst: k.burst,
    expiresAt: k.expiresAt?.getTime() ?? null,
    revoked: k.revokedAt !== null,
  };
}

/**
 * Presented key → verified key. The hot path is one HMAC and one Map lookup; the database is
 * asked only on a cache miss, and concurrent misses for the same key share one query.
 */
export class KeyVerifier {
  private readonly inflight = new Map<string, Promise<VerifiedKey | null>>();

  constructor(private readonly deps: VerifierDeps) {}

  /**
   * `admit` is awaited before a database lookup (a cache miss not already being looked up);
   * it may throw to refuse the lookup.
   */
  async verify(presented: string | undefined, admit?: () => Promise<void>): Promise<Verification> {
    if (presented === undefined || presented === '') return { ok: false, reason: 'missing_key' };
    // Length first: an attacker's megabyte-long header costs no HMAC.
    if (presented.length !== KEY_LENGTH) return { ok: false, reason: 'malformed_key' };
    const parsed = parseKey(presented);
    if (!parsed.ok) return { ok: false, reason: parsed.reason };

    const digest = this.deps.peppers.digest(presented);
    const cacheKey = digest.toString('base64');
    let key = this.deps.cache.get(cacheKey);
    if (key === undefined) key = await this.lookup(presented, digest, cacheKey, admit);

    if (!key) return { ok: false, reason: 'invalid_key', cause: 'unknown' };
    if (key.revoked) return { ok: false, reason: 'invalid_key', cause: 'revoked', keyId: key.id };
    if (key.expiresAt !== null && key.expiresAt <= this.deps.clock.now().getTime()) {
      return { ok: false, reason: 'invalid_key', cause: 'expired', keyId: key.id };
    }
    return { ok: true, key };
  }

  private async lookup(
    presented: string,
    digest: Buffer,
    cacheKey: string,
    admit: (() => Promise<void>) | undefined,
  ): Promise<VerifiedKey | null> {
    if (admit && !this.inflight.has(cacheKey)) await admit();
    const pending = this.inflight.get(cacheKey);
    if (pending) return pending;
    const generation = this.deps.cache.generation;
    const promise = this.fetch(presented, digest)
      .then(
        (key) => {
          this.deps.cache.set(cacheKey, key, generation);
          return key;
        },
        (err: unknown) => {
          // Postgres unreachable: a key this process had verified before still authenticates, so
          // what is answered from memory keeps answering; any other key fails with the outage
          // (503), never as invalid (401).
          const known = isConnectionError(err) ? this.deps.cache.lastKnown(cacheKey) : undefined;
          if (!known) throw err;
          return known;
        },
      )
      .finally(() => this.inflight.delete(cacheKey));
    this.inflight.set(cacheKey, promise);
    return promise;
  }

  private async fetch(presented: string, digest: Buffer): Promise<VerifiedKey | null> {
    const { peppers, pool } = this.deps;
    const hashes = peppers.versions.map((v) => (v === peppers.current ? digest : peppers.digest(presented, v)));
    const row = await findKeyByHashes(pool, hashes);
    if (!row || !peppers.versions.includes(row.pepperVersion)) return null;
    const expected = row.pepperVersion === peppers.current ? digest : peppers.digest(presented, row.pepperVersion);
    if (!timingSafeEqual(expected, row.keyHash)) return null;
    if (row.pepperVersion !== peppers.current) await this.rehash(row, digest);
    return toVerified(row);
  }

  /**
   * A key hashed under an older pepper moves to the current one on first use, so an old pepper
   * can be retired once no key needs it. A failure only means trying again next time.
   */
  private async rehash(row: StoredKey, digest: Buffer): Promise<void> {
    try {
      await rehashKey(this.deps.pool, row.id, row.pepperVersion, { keyHash: digest, pepperVersion: this.deps.peppers.current });
    } catch (err) {
      this.deps.logger.warn({ err, keyId: row.id }, 'could not rehash an API key under the current pepper');
    }
  }
}
