import { Writable } from 'node:stream';
import type { Express } from 'express';
import { pino } from 'pino';
import { unwrap } from '../../src/api/refusal';
import type { Clock } from '../../src/clock';
import { redactPaths } from '../../src/logger';
import { defaultEventTimePolicy } from '../../src/domain/metering/event-time';
import { startEntitlements, type Entitlements } from '../../src/entitlements/entitlements';
import { startKeys, type Keys } from '../../src/keys/keys';
import { buildApiApp, type ApiAppDeps } from '../../src/main/api-app';
import { parsePeppers, type Peppers } from '../../src/keys/pepper';
import type { AuthFailurePolicy } from '../../src/keys/rate-limiter';
import type { NewKey } from '../../src/keys/service';
import { createPool, type Pool } from '../../src/db/pool';
import type { TestDatabase } from './database';
import { listen } from './http';

export const testPeppers = () => parsePeppers(`1:${'test-pepper-'.repeat(3)}`);

/** A clock tests move by hand; key expiry is judged against it. */
export class ManualClock implements Clock {
  constructor(private current: Date) {}
  now(): Date {
    return new Date(this.current);
  }
  advance(ms: number): void {
    this.current = new Date(this.current.getTime() + ms);
  }
}

export interface KeysTestApp {
  url: string;
  /** The Express app itself, for tests that inspect what it mounts. */
  app: Express;
  keys: Keys;
  entitlements: Entitlements;
  /** This instance's own pool: counting its queries counts the instance's database work. */
  pool: Pool;
  logs: string[];
  /** Issues a key as the CLI would and returns its secret. */
  issue(input: Partial<NewKey> & Pick<NewKey, 'scopes'>): Promise<{ secret: string; id: string }>;
  call(method: string, path: string, key: string | undefined, body?: unknown): Promise<Response>;
  close(): Promise<void>;
}

/**
 * One API process as production wires it: its own pool, its own LISTEN connection, the real
 * authentication middleware and every router (`buildApiApp`), on one test database.
 * Several instances on the same database stand for several API processes.
 */
export async function startKeysApp(
  db: Pick<TestDatabase, 'url'>,
  opts: {
    clock?: Clock;
    ttlSeconds?: number;
    peppers?: Peppers;
    billing?: ApiAppDeps['billing'];
    provider?: ApiAppDeps['provider'];
    usageSignals?: ApiAppDeps['usageSignals'];
    authFailures?: AuthFailurePolicy;
  } = {},
): Promise<KeysTestApp> {
  const clock = opts.clock ?? { now: () => new Date() };
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const logger = pino({ level: 'debug', redact: { paths: redactPaths, censor: '[redacted]' } }, stream);
  const pool = createPool(db.url, 5);
  const keys = await startKeys({
    pool,
    databaseUrl: db.url,
    peppers: opts.peppers ?? testPeppers(),
    clock,
    logger,
    cache: { ttlSeconds: opts.ttlSeconds ?? 60, maxEntries: 1000 },
    defaults: { ratePerSecond: 1000, burst: 1000 },
    ...(opts.authFailures ? { authFailures: opts.authFailures } : {}),
  });
  const entitlements = await startEntitlements({ databaseUrl: db.url, clock, logger, upgradeUrl: '/upgrade', topUpUrl: '/top-up' });
  const { app, stop } = buildApiApp({
    pool,
    keys,
    entitlements: entitlements.store,
    clock,
    logger,
    readiness: { postgres: () => pool.query('select 1') },
    timePolicy: defaultEventTimePolicy,
    ...(opts.billing ? { billing: opts.billing } : {}),
    ...(opts.provider ? { provider: opts.provider } : {}),
    ...(opts.usageSignals ? { usageSignals: opts.usageSignals } : {}),
  });
  const server = await listen(app);
  return {
    url: server.url,
    app,
    keys,
    entitlements,
    pool,
    logs: lines,
    issue: async (input) => {
      const { secret, key } = unwrap(await keys.service.create('cli', { name: 'test', environment: 'test', ...input }));
      return { secret, id: key.id };
    },
    call: (method, path, key, body) =>
      fetch(`${server.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      }),
    close: async () => {
      await server.close();
      await stop();
      await entitlements.close();
      await keys.close();
      await pool.end();
    },
  };
}
