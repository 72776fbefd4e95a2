import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { Agent, request, type Server } from 'node:http';
import autocannon from 'autocannon';
import type { Express } from 'express';
import { pino } from 'pino';
import { unwrap } from '../src/api/refusal';
import type { Scope } from '../src/keys/principal';
import { systemClock } from '../src/clock';
import { createPool } from '../src/db/pool';
import { defaultEventTimePolicy } from '../src/domain/metering/event-time';
import { startEntitlements } from '../src/entitlements/entitlements';
import { startKeys, type Keys } from '../src/keys/keys';
import { parsePeppers } from '../src/keys/pepper';
import { buildApiApp } from '../src/main/api-app';
import { API_NODE_FLAGS } from '../src/main/api-node-flags';
import { serveHttp, type HttpServer } from '../src/main/http-server';
import { loadConfig } from '../src/config';
import { freePort } from '../scripts/free-port';
import { countQueries } from '../scripts/query-counter';
import path from 'node:path';
import { ensureDatabase, startEmbeddedPostgres, type RunningPostgres } from '../src/db/embedded';
import { migrate } from '../src/db/migrate';
import type { Queryable } from '../src/db/transaction';

export interface BenchDatabase {
  url: string;
  stop(): Promise<void>;
}

/**
 * A durable PostgreSQL (fsync on, the defaults) in a scratch directory, migrated: benchmarks
 * measure what production would get, not a tuned-for-speed test cluster.
 */
export async function startBenchDatabase(name: string, settings?: Record<string, string>): Promise<BenchDatabase> {
  const dataDir = path.resolve(import.meta.dirname, '..', '.data', `bench-${name}-${process.pid}`);
  rmSync(dataDir, { recursive: true, force: true });
  let pg: RunningPostgres | undefined;
  if (!process.env.DATABASE_URL)
    pg = await startEmbeddedPostgres({ dataDir, port: await freePort(), durability: 'full', ...(settings ? { settings } : {}) });
  const url = await ensureDatabase(process.env.DATABASE_URL ?? pg!.url, `bench_${name}_${process.pid}`);
  await migrate(url);
  return {
    url,
    stop: async () => {
      await pg?.stop();
      rmSync(dataDir, { recursive: true, force: true });
      // As root the data may have been placed elsewhere (see startEmbeddedPostgres).
      if (pg?.startedHere) rmSync(pg.dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * The benches' catalog: the meter `tokens` (the sum of each event's `tokens` property) and the
 * customers `cust-0` … `cust-${customers - 1}`. Returns their ids, the n-th customer's at index n.
 */
export async function seedTokensCatalog(db: Queryable, customers: number): Promise<{ meterId: string; customerIds: string[] }> {
  const meter = await db.query<{ id: string }>(
    `insert into meters (code, name, event_type, aggregation, value_property) values ('tokens', 'Tokens', 'tokens', 'sum', 'tokens') returning id`,
  );
  const { rows } = await db.query<{ id: string; n: number }>(
    `insert into customers (external_id, name, currency) select 'cust-' || g, 'Customer ' || g, 'USD' from generate_series(0, $1 - 1) g
     returning id, substr(external_id, 6)::int as n`,
    [customers],
  );
  const customerIds = new Array<string>(customers);
  for (const r of rows) customerIds[r.n] = r.id;
  return { meterId: meter.rows[0]!.id, customerIds };
}

export const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** The peppers bench keys are hashed with: a bench's API process gets them as API_KEY_PEPPERS. */
export const PEPPER = `1:${'bench-pepper-'.repeat(4)}`;

function benchKeys(databaseUrl: string, pool: ReturnType<typeof createPool>, rate: number): Promise<Keys> {
  return startKeys({
    pool,
    databaseUrl,
    peppers: parsePeppers(PEPPER),
    clock: systemClock,
    logger: pino({ level: 'warn' }),
    cache: { ttlSeconds: 60, maxEntries: 10_000 },
    defaults: { ratePerSecond: rate, burst: rate },
  });
}

/**
 * Issues a key straight into the bench database, as the CLI does, with a rate limit high enough
 * that the limiter runs on every request without refusing the load generator.
 */
export async function issueBenchKey(databaseUrl: string, scopes: Scope[]): Promise<string> {
  const pool = createPool(databaseUrl, 1);
  const keys = await benchKeys(databaseUrl, pool, 1_000_000);
  try {
    return unwrap(await keys.service.create('cli', { name: 'bench', environment: 'test', scopes })).secret;
  } finally {
    await keys.close();
    await pool.end();
  }
}

/** The production API composition on the bench database, for a benchmark's server process. */
/**
 * Forks the bench file `entry` as the API child, with the node flags the API is deployed with
 * (src/main/api-node-flags.ts) and `moreFlags` after them.
 */
export function forkBenchApi(entry: string, args: readonly string[], moreFlags: readonly string[] = []): ChildProcess {
  return fork(entry, args, { execArgv: [...API_NODE_FLAGS, '--import', 'tsx', ...moreFlags], stdio: 'inherit' });
}

export async function serveBenchApi(databaseUrl: string, port: number): Promise<Server> {
  const pool = createPool(databaseUrl, 10);
  const keys = await benchKeys(databaseUrl, pool, 100);
  const logger = pino({ level: 'warn' });
  const entitlements = await startEntitlements({ databaseUrl, clock: systemClock, logger, upgradeUrl: '/upgrade', topUpUrl: '/top-up' });
  const { app } = buildApiApp({
    pool,
    keys,
    entitlements: entitlements.store,
    clock: systemClock,
    logger,
    readiness: { postgres: () => pool.query('select 1') },
    timePolicy: defaultEventTimePolicy,
  });
  return (await serveBenchHttp(app, port)).server;
}

/** Serves a bench's API app on loopback as production serves it (src/main/http-server.ts), with the default settings. */
export const serveBenchHttp = (app: Express, port: number): Promise<HttpServer> =>
  serveHttp(app, { port, host: '127.0.0.1', keepAliveTimeoutSeconds: loadConfig({}).HTTP_KEEP_ALIVE_TIMEOUT_SECONDS });

type QueryCount = { queries: number };

/**
 * Child side of a benchmark that proves a path needs no database: serves the API and answers
 * every message from the parent with the number of queries its pg clients have sent.
 */
export async function serveCountingQueries(databaseUrl: string, port: number): Promise<void> {
  const counter = countQueries();
  await serveBenchApi(databaseUrl, port);
  process.send!({ queries: counter.count } satisfies QueryCount);
  process.on('message', () => process.send!({ queries: counter.count } satisfies QueryCount));
}

/** Parent side: the server child's query count now. */
export async function queriesSoFar(child: ChildProcess): Promise<number> {
  child.send('count');
  const [message] = (await once(child, 'message')) as [QueryCount];
  return message.queries;
}

/** Closed-loop load on POST /v1/events: `connections` requests in flight for `duration` seconds, each body from `body()`. */
export function postEvents(opts: { base: string; key: string; connections: number; duration: number; body: () => string }) {
  return autocannon({
    url: `${opts.base}/v1/events`,
    connections: opts.connections,
    duration: opts.duration,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${opts.key}` },
        setupRequest: (req) => ({ ...req, body: opts.body() }),
      },
    ],
  });
}

export interface PacedResult {
  /** 2xx answers. */
  ok: number;
  /** 503 answers: the API's queue was full, its designed answer to more load than it takes. */
  refused: number;
  /** Any other answer, or none. */
  failed: number;
  /** The failed requests by what they got: `HTTP 500`, `ECONNRESET`, … */
  failures: Record<string, number>;
  /** Seconds from the first request's scheduled start to the last answer. */
  duration: number;
  /**
   * Of the 2xx answers (a refusal is quick and would flatter them), milliseconds, ascending: each
   * from the request's scheduled start, so a stall counts for every request it delays.
   */
  latencies: number[];
}

/** `2 × ECONNRESET, 1 × HTTP 500`: what a run's failed requests got. */
export const describeFailures = (failures: Record<string, number>): string =>
  Object.entries(failures)
    .map(([reason, n]) => `${n} × ${reason}`)
    .join(', ');

/**
 * Open-loop load on POST /v1/events: a request every 1/`rate` s for `duration` seconds whatever
 * the answers, as independent clients send, on as many connections as are in flight. What a
 * closed loop cannot give: the latency at a given rate. With N requests in flight a closed loop's
 * latency is N / throughput (Little's law), the load generator's own queue.
 */
export async function postEventsAtRate(opts: {
  base: string;
  key: string;
  rate: number;
  duration: number;
  body: () => string;
}): Promise<PacedResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const url = new URL(`${opts.base}/v1/events`);
  const latencies: number[] = [];
  let ok = 0;
  let refused = 0;
  let failed = 0;
  const failures: Record<string, number> = {};
  const fail = (reason: string) => {
    failed++;
    failures[reason] = (failures[reason] ?? 0) + 1;
  };
  const send = (body: string, scheduled: number) =>
    new Promise<void>((resolve) => {
      const req = request(
        url,
        { method: 'POST', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${opts.key}` } },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode! >= 200 && res.statusCode! < 300) {
              ok++;
              latencies.push(performance.now() - scheduled);
            } else if (res.statusCode === 503) refused++;
            else fail(`HTTP ${res.statusCode}`);
            resolve();
          });
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        fail(err.code ?? err.message);
        resolve();
      });
      req.end(body);
    });
  const interval = 1000 / opts.rate;
  const count = Math.round(opts.rate * opts.duration);
  const inFlight: Array<Promise<void>> = [];
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const scheduled = start + i * interval;
    const wait = scheduled - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(send(opts.body(), scheduled));
  }
  await Promise.all(inFlight);
  const duration = (performance.now() - start) / 1000;
  agent.destroy();
  return { ok, refused, failed, failures, duration, latencies: latencies.sort((a, b) => a - b) };
}
