/**
 * `npm run bench:scale`: what Temporal and PostgreSQL pay for quota tracking at steady usage, how
 * prompt threshold notices and hard-limit blocks are, and how long a herd of period closes takes.
 *
 * The production processes, each its own Node process as deployed: the API (src/main/api.ts, usage
 * signaler included), a worker with the real activities (src/main/worker.ts, its slots and pool from
 * config) and the payment-provider simulator (src/main/provider-simulator.ts); a Temporal dev server
 * (`temporal server start-dev`) with its store in memory, and a durable embedded PostgreSQL with
 * pg_stat_statements. In memory, because the dev server's SQLite file commits every transaction
 * with an fsync through one connection: on this VM it dispatched ~2 workflow tasks/s under load,
 * which measures the disk, not the design; a production cluster's store is sharded. Environment variables the system reads (WORKER_*,
 * DATABASE_POOL_SIZE, PROVIDER_MAX_REQUESTS_PER_SECOND, USAGE_REPORT_INTERVAL_SECONDS,
 * USAGE_SIGNAL_MARGIN, ...) pass through to the API and worker unchanged.
 *
 * The run: BENCH_CUSTOMERS customers are created through the API, one plan with a per-unit charge on
 * a count meter and a limit (soft thresholds at 50 % and 80 % of a hard limit of 1,000 events, block
 * after a BENCH_GRACE_SECONDS grace), and every customer is subscribed with the same start, on a
 * fixed-length interval, so every period ends at the same instant E. Then, for the steady window (at
 * least BENCH_WINDOW_SECONDS; it runs from the last subscription to E − BENCH_SETTLE_SECONDS),
 * batches go to POST /v1/events round-robin over all customers at BENCH_REQUESTS_PER_SECOND:
 * BENCH_CROSSING_SHARE of them ("heavy") cross both thresholds and the hard limit around the middle
 * of the window, the others stay below 30 % of the limit. Once a heavy customer is over its limit, a
 * poller sends it one event every 200 ms from shortly before its grace ends until the first 429
 * (for at most 30 s past the grace end: a block later than that counts as missing).
 * At the window's end the APIs are stopped (each flushes what its signaler still owes) and the periods
 * close at E (plus ALLOWED_LATENESS_SECONDS, 0 here unless set).
 *
 * What each printed figure is, and how it is measured:
 * - customers: N active — customers with at least one event stored during the window (SQL).
 * - temporal history events per active customer-hour — Temporal's own histories: every run of every
 *   billing workflow (first run, then along continue-as-new) is fetched after the close, its events
 *   whose eventTime falls between the window's start and the close (E + lateness: the window, then
 *   the API's flush and whatever a lagging worker completes in the quiet settle time) are counted,
 *   and the sum is divided by the active customers and by the window length in hours. Setup
 *   (start) and close events fall outside. A worker still behind at E undercounts: see the latencies.
 * - threshold notice latency p99 — per soft threshold a customer crossed: the notification row's
 *   created_at minus the received_at of the stored batch whose events took the customer's usage to
 *   the threshold (SQL, window functions over usage_events). received_at is set in the ingest request
 *   before its transaction commits, so this is an upper bound of "commit to notification row".
 *   Crossings without a notification are reported next to the figure.
 * - hard limit block latency p99 — per heavy customer: the time its poller saw the first 429 minus
 *   (received_at of the batch that took usage over the hard limit + the grace period), i.e. how far
 *   past "grace ends" the block came. The poller's 200 ms spacing is included.
 * - period close — from E (+ the allowed lateness) to the last paid_at of the invoices of the
 *   period: each was drafted, finalized and charged at the provider simulator by the worker.
 * - workflow totals equal stored events — after the API's flush and before E, every workflow's
 *   `state` query usage equals SQL count(*) of that customer's stored events in the period (polled
 *   until equal or until E).
 * - postgres statements per second on quota bookkeeping — pg_stat_statements calls during the window,
 *   of statements on entitlements (publishQuota, setEntitlement, the API's reads) or reading
 *   usage_counters / usage_events other than the ingest statements themselves (the workflows'
 *   counter re-reads), divided by the window length. The statements counted go to stderr.
 *
 *   BENCH_CUSTOMERS (10000)  BENCH_WINDOW_SECONDS (360)  BENCH_SETTLE_SECONDS (60)
 *   BENCH_REQUESTS_PER_SECOND (min(100, customers / 2))  BENCH_CONNECTIONS (32)
 *   BENCH_CROSSING_SHARE (0.1)  BENCH_GRACE_SECONDS (10)  BENCH_CLOSE_TIMEOUT_SECONDS (900)
 *   BENCH_SUBSCRIBE_SECONDS (estimated from the customer creation rate)
 *   BENCH_API_PROCESSES (2)  BENCH_WORKERS (2) — separate processes against the same Postgres and
 *   Temporal; event batches go to the APIs in turn, so every customer's usage reaches its workflow
 *   from several producers, which is what "totals equal" checks under scale-out.
 * Progress goes to stderr; stdout gets the seven result lines only.
 */
import path from 'node:path';
import { rmSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { freePort } from '../scripts/free-port';
import { API_NODE_FLAGS } from '../src/main/api-node-flags';
import { createPool, type Pool } from '../src/db/pool';
import { startChildServer, type ChildServer } from '../src/process/child-server';
import { temporalCliPath } from '../src/temporal/binaries';
import { startTemporalDevServer } from '../src/temporal/dev-server';
import { billingState, workflowIdFor } from '../src/workflows/billing-period';
import { issueBenchKey, PEPPER, percentile, startBenchDatabase } from './support';

const num = (name: string, fallback: number) => {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Number(v);
};
const CUSTOMERS = num('BENCH_CUSTOMERS', 10_000);
const MIN_WINDOW_S = num('BENCH_WINDOW_SECONDS', 360);
const SETTLE_S = num('BENCH_SETTLE_SECONDS', 60);
const RATE = num('BENCH_REQUESTS_PER_SECOND', Math.max(1, Math.min(100, CUSTOMERS / 2)));
const CONNECTIONS = num('BENCH_CONNECTIONS', 32);
const SHARE = num('BENCH_CROSSING_SHARE', 0.1);
const GRACE_S = num('BENCH_GRACE_SECONDS', 10);
const CLOSE_TIMEOUT_S = num('BENCH_CLOSE_TIMEOUT_SECONDS', 900);
const API_PROCESSES = num('BENCH_API_PROCESSES', 2);
const WORKERS = num('BENCH_WORKERS', 2);
const LATENESS_S = num('ALLOWED_LATENESS_SECONDS', 0);
const HARD_LIMIT = 1000;
const SOFT_PERCENTS = [50, 80];
const POLL_MS = 200;
const BLOCK_WAIT_S = 30;
const METER = 'api_calls';

const log = (message: string) => process.stderr.write(`[bench:scale ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Runs `task` over `items` with at most `limit` at once. */
async function inParallel<T>(items: T[], limit: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await task(items[i]!, i);
      }
    }),
  );
}

const node = (entry: string, flags: readonly string[] = []) => ({
  command: process.execPath,
  args: [...flags, '--import', 'tsx', path.resolve(import.meta.dirname, '..', entry)],
});

async function answers(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(1000) });
    return true;
  } catch {
    return false;
  }
}

interface Customer {
  id: string;
  /** Its position: the first of its requests goes to API process `index mod processes`. */
  index: number;
  heavy: boolean;
  sent: number;
  seq: number;
  /** Event requests sent so far: each goes to the next API process. */
  requests: number;
  busy: boolean;
  /** When a heavy customer's usage went over the hard limit (bench clock, response received). */
  overAt?: number;
  firstRefusalAt?: number;
}

async function main(): Promise<void> {
  const scratch = path.resolve(import.meta.dirname, '..', '.data', `bench-scale-${process.pid}`);
  const children: ChildServer[] = [];
  const db = await startBenchDatabase('scale', { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'top' });
  const temporal = await startTemporalDevServer({
    cliPath: temporalCliPath(),
    port: await freePort(),
    uiPort: await freePort(),
    namespace: 'default',
  });
  const pool = createPool(db.url, 8);
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection });
  let apis: ChildServer[] = [];
  try {
    await pool.query('create extension if not exists pg_stat_statements');
    const taskQueue = 'bench-scale';
    const apiPorts = await Promise.all(Array.from({ length: API_PROCESSES }, () => freePort()));
    const providerPort = await freePort();
    const env = {
      ...process.env,
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_TASK_QUEUE: taskQueue,
      HOST: '127.0.0.1',
      PROVIDER_PORT: String(providerPort),
      PROVIDER_URL: `http://127.0.0.1:${providerPort}`,
      DATA_DIR: scratch,
      API_KEY_PEPPERS: PEPPER,
      API_KEY_DEFAULT_RATE_PER_SECOND: '100000',
      API_KEY_DEFAULT_BURST: '1000000',
      ALLOWED_LATENESS_SECONDS: String(LATENESS_S),
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      DEMO: 'false',
    };
    // Child stdout (pino) goes to our stderr: stdout carries the results only.
    const spawnOptions = { env, stdio: ['ignore', 2, 'pipe'] as ['ignore', number, 'pipe'] };
    const bases = apiPorts.map((port) => `http://127.0.0.1:${port}`);
    let nextApi = 0;
    /** The API processes in turn, as a load balancer would spread requests. */
    const anyApi = () => bases[nextApi++ % bases.length]!;
    /**
     * A customer's event requests go to the API processes in turn, so each holds some of every
     * customer's usage, as behind a load balancer. (Taking the processes in turn across all
     * requests instead, with customers in turn too, sent every customer to one process whenever
     * the number of customers was a multiple of the number of processes.)
     */
    const apiFor = (c: Customer) => bases[(c.index + c.requests++) % bases.length]!;
    children.push(
      await startChildServer({
        name: 'provider simulator',
        ...node('src/main/provider-simulator.ts'),
        spawnOptions,
        ready: () => answers(`http://127.0.0.1:${providerPort}/v1/charges`),
        timeoutMs: 60_000,
        killAfterMs: 10_000,
      }),
    );
    for (let w = 1; w <= WORKERS; w++) {
      children.push(
        await startChildServer({
          name: `worker ${w}`,
          ...node('src/main/worker.ts'),
          spawnOptions,
          ready: () => Promise.resolve(true),
          timeoutMs: 60_000,
          killAfterMs: 30_000,
        }),
      );
    }
    apis = await Promise.all(
      bases.map((base, i) =>
        startChildServer({
          name: `API ${i + 1}`,
          ...node('src/main/api.ts', API_NODE_FLAGS),
          spawnOptions: { ...spawnOptions, env: { ...env, PORT: String(apiPorts[i]) } },
          ready: async () => (await answers(`${base}/healthz`)) && (await fetch(`${base}/readyz`)).ok,
          timeoutMs: 60_000,
          killAfterMs: 30_000,
        }),
      ),
    );
    log(`${API_PROCESSES} API processes, ${WORKERS} workers`);

    const secret = await issueBenchKey(db.url, ['events:write', 'billing:admin', 'billing:read']);
    const headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json' };
    const post = async (route: string, body: unknown) => {
      for (let attempt = 1; ; attempt++) {
        const res = await fetch(`${anyApi()}${route}`, { method: 'POST', headers, body: JSON.stringify(body) });
        if (res.ok) return res;
        const text = await res.text();
        if (res.status < 500 || attempt === 5) throw new Error(`${route}: ${res.status} ${text}`);
        await sleep(500 * attempt);
      }
    };

    // Setup: meter, customers, then (with the subscribe time estimated) the plan and subscriptions.
    await post('/v1/meters', { code: METER, name: 'API calls', event_type: 'api_call', aggregation: 'count' });
    const every = SHARE > 0 ? Math.max(1, Math.round(1 / SHARE)) : Infinity;
    const customers: Customer[] = Array.from({ length: CUSTOMERS }, (_, i) => ({
      id: `cust-${i}`,
      index: i,
      heavy: i % every === 0,
      sent: 0,
      seq: 0,
      requests: 0,
      busy: false,
    }));
    let started = Date.now();
    await inParallel(customers, 32, async (c) => {
      await post('/v1/customers', { external_id: c.id, name: c.id, currency: 'USD' });
    });
    const createSeconds = (Date.now() - started) / 1000;
    log(`${CUSTOMERS} customers created in ${createSeconds.toFixed(1)} s`);
    // Subscribing starts a workflow too: budget three times the customer creation, at least 30 s.
    const subscribeBudget = num('BENCH_SUBSCRIBE_SECONDS', Math.ceil(Math.max(30, 3 * createSeconds + 10)));
    const periodSeconds = subscribeBudget + MIN_WINDOW_S + SETTLE_S;
    const anchor = Math.ceil(Date.now() / 1000) * 1000;
    const periodEnd = anchor + periodSeconds * 1000;
    await post('/v1/plans', {
      id: 'scale',
      name: 'Scale bench',
      currency: 'USD',
      charges: [{ meter: METER, model: 'per_unit', unit_price: '0.01' }],
      interval: { kind: 'duration', iso: `PT${periodSeconds}S` },
      limits: [
        {
          meter: METER,
          soft_thresholds: SOFT_PERCENTS.map((percent) => ({ percent })),
          hard_limit: String(HARD_LIMIT),
          at_hard_limit: 'block',
          grace_period: `PT${GRACE_S}S`,
        },
      ],
    });
    started = Date.now();
    await inParallel(customers, 32, async (c) => {
      await post('/v1/subscriptions', { customer: c.id, plan: 'scale', start: new Date(anchor).toISOString() });
    });
    log(
      `${CUSTOMERS} subscriptions in ${((Date.now() - started) / 1000).toFixed(1)} s; every period ends at ${new Date(periodEnd).toISOString()}`,
    );

    // The steady window.
    const windowStart = Date.now();
    const windowEnd = periodEnd - SETTLE_S * 1000;
    const windowSeconds = (windowEnd - windowStart) / 1000;
    if (windowSeconds < MIN_WINDOW_S * 0.9)
      log(`WARNING: subscribing overran its budget; the window is ${windowSeconds.toFixed(0)} s (set BENCH_SUBSCRIBE_SECONDS higher)`);
    const cycleSeconds = CUSTOMERS / RATE;
    const requestsPerWindow = windowSeconds / cycleSeconds;
    const lightBatch = Math.max(1, Math.floor((0.3 * HARD_LIMIT) / requestsPerWindow));
    const heavyBatch = Math.min(1000, Math.ceil((HARD_LIMIT + 1) / Math.max(1, requestsPerWindow * 0.5)));
    log(
      `window ${windowSeconds.toFixed(0)} s: ${RATE} requests/s, each customer every ${cycleSeconds.toFixed(1)} s; batches of ${lightBatch} (light), ${heavyBatch} (heavy, ${customers.filter((c) => c.heavy).length} customers)`,
    );
    await pool.query('select pg_stat_statements_reset()');

    const outcome = { ok: 0, refused: 0, failed: 0 };
    const send = async (c: Customer, count: number): Promise<number> => {
      const events = Array.from({ length: count }, () => ({ id: `${c.id}-${c.seq++}`, customer: c.id, type: 'api_call' }));
      try {
        const res = await fetch(`${apiFor(c)}/v1/events`, {
          method: 'POST',
          headers,
          body: JSON.stringify(count === 1 ? events[0] : events),
        });
        await res.arrayBuffer();
        if (res.ok) outcome.ok++;
        else if (res.status === 429) outcome.refused++;
        else outcome.failed++;
        return res.status;
      } catch {
        outcome.failed++;
        return 0;
      }
    };
    const pollers: Promise<void>[] = [];
    const poll = async (c: Customer) => {
      const graceEnd = c.overAt! + GRACE_S * 1000;
      await sleep(graceEnd - 1000 - Date.now());
      // Gives up BLOCK_WAIT_S past the grace end (or at the window's end): counted as missing.
      while (Date.now() < Math.min(windowEnd, graceEnd + BLOCK_WAIT_S * 1000)) {
        const at = Date.now();
        if ((await send(c, 1)) === 429) {
          c.firstRefusalAt = at;
          return;
        }
        await sleep(at + POLL_MS - Date.now());
      }
    };
    let inFlight = 0;
    let turn = 0;
    const spacingMs = 1000 / RATE;
    for (let next = Date.now(); next < windowEnd; next += spacingMs) {
      await sleep(next - Date.now());
      const c = customers[turn++ % CUSTOMERS]!;
      if (c.busy || inFlight >= CONNECTIONS || c.overAt !== undefined) continue;
      c.busy = true;
      inFlight++;
      const count = c.heavy ? heavyBatch : lightBatch;
      void send(c, count).then((status) => {
        c.busy = false;
        inFlight--;
        if (status < 200 || status >= 300) return;
        c.sent += count;
        if (c.heavy && c.sent > HARD_LIMIT && c.overAt === undefined) {
          c.overAt = Date.now();
          pollers.push(poll(c));
        }
      });
    }
    while (inFlight > 0) await sleep(50);
    await Promise.all(pollers);
    const statements = await pool.query<{ query: string; calls: string }>(
      `select query, calls::text from pg_stat_statements s join pg_database d on d.oid = s.dbid
        where d.datname = current_database()
          and (query ~* 'entitlements' or (query ~* 'usage_counters|usage_events' and query !~* 'insert into usage_events|unnest\\(|^copy |ingest_stage'))
        order by calls desc`,
    );
    const actualWindow = (Date.now() - windowStart) / 1000;
    log(`window over: ${outcome.ok} batches stored, ${outcome.refused} refused (429), ${outcome.failed} failed; stopping the APIs (flush)`);
    await Promise.all(apis.map((api) => api.stop()));
    apis = [];

    // Totals: every workflow's usage against the stored events, before the periods close.
    const stored = new Map(
      (
        await pool.query<{ external_id: string; n: string }>(
          `select c.external_id, count(*)::text as n from usage_events e join customers c on c.short_id = e.customer_short_id
            where e.event_time >= $1 and e.event_time < $2 group by 1`,
          [new Date(anchor), new Date(periodEnd)],
        )
      ).rows.map((r) => [r.external_id, r.n]),
    );
    let unequal = customers.map((c) => c.id);
    while (unequal.length > 0 && Date.now() < periodEnd - 2000) {
      const still: string[] = [];
      await inParallel(unequal, 32, async (id) => {
        if (Date.now() >= periodEnd - 2000) return void still.push(id);
        try {
          const state = await client.workflow.getHandle(workflowIdFor(id)).query(billingState);
          if (state.period.start !== new Date(anchor).toISOString() || (state.meters[METER]?.usage ?? '0') !== (stored.get(id) ?? '0'))
            still.push(id);
        } catch {
          still.push(id);
        }
      });
      unequal = still;
      if (unequal.length > 0) await sleep(1000);
    }
    log(
      `workflow totals: ${CUSTOMERS - unequal.length} of ${CUSTOMERS} equal the stored events${unequal.length ? ` (first unequal: ${unequal[0]})` : ''}`,
    );

    // The close herd.
    const closeFrom = periodEnd + LATENESS_S * 1000;
    let paid = 0;
    let finalized = 0;
    const closeDeadline = closeFrom + CLOSE_TIMEOUT_S * 1000;
    while (Date.now() < closeDeadline) {
      const row = (
        await pool.query<{ paid: number; finalized: number }>(
          `select count(*) filter (where status = 'paid')::int as paid, count(*) filter (where finalized_at is not null)::int as finalized
             from invoices where period_start = $1`,
          [new Date(anchor)],
        )
      ).rows[0]!;
      if (row.paid !== paid || row.finalized !== finalized) log(`close: ${row.finalized} finalized, ${row.paid} paid`);
      ({ paid, finalized } = row);
      if (paid >= CUSTOMERS) break;
      await sleep(2000);
    }
    const lastPaid = (
      await pool.query<{ at: Date | null }>(`select max(paid_at) as at from invoices where period_start = $1 and status = 'paid'`, [
        new Date(anchor),
      ])
    ).rows[0]!.at;
    const closeSeconds = lastPaid ? (lastPaid.getTime() - closeFrom) / 1000 : NaN;

    // Latencies, from the database and the pollers.
    const active = Number(
      (
        await pool.query<{ n: string }>(
          `select count(distinct customer_short_id) as n from usage_events where received_at >= $1 and received_at < $2`,
          [new Date(windowStart), new Date(windowStart + actualWindow * 1000)],
        )
      ).rows[0]!.n,
    );
    const crossings = await crossingTimes(pool, [...SOFT_PERCENTS.map((p) => (HARD_LIMIT * p) / 100), HARD_LIMIT + 1]);
    const notices = new Map(
      (
        await pool.query<{ external_id: string; threshold: string; created_at: Date }>(
          `select c.external_id, n.threshold, n.created_at from notifications n
             join subscriptions s on s.id = n.subscription_id join customers c on c.id = s.customer_id
            where n.kind = 'threshold_crossed'`,
        )
      ).rows.map((r) => [`${r.external_id}/${r.threshold}`, r.created_at.getTime()]),
    );
    const noticeLatencies: number[] = [];
    const lateNotices: string[] = [];
    let missingNotices = 0;
    for (const percent of SOFT_PERCENTS) {
      for (const [customer, at] of crossings.get((HARD_LIMIT * percent) / 100) ?? []) {
        const noticed = notices.get(`${customer}/${percent}%`);
        if (noticed === undefined) missingNotices++;
        else noticeLatencies.push((noticed - at) / 1000);
        if (noticed !== undefined && noticed - at > 5000)
          lateNotices.push(
            `${customer} ${percent}%: crossed ${((at - windowStart) / 1000).toFixed(1)} s into the window, noticed ${((noticed - at) / 1000).toFixed(1)} s later`,
          );
      }
    }
    const sortedNotices = [...noticeLatencies].sort((a, b) => a - b);
    log(
      `notice latencies (s): p50 ${percentile(sortedNotices, 50).toFixed(2)}, p90 ${percentile(sortedNotices, 90).toFixed(2)}, max ${sortedNotices.at(-1)?.toFixed(2)} of ${sortedNotices.length}; over 5 s: ${lateNotices.length}`,
    );
    for (const late of lateNotices) log(`  ${late}`);
    const blockLatencies: number[] = [];
    let missingBlocks = 0;
    const overs = crossings.get(HARD_LIMIT + 1) ?? new Map<string, number>();
    for (const c of customers) {
      const over = overs.get(c.id);
      if (over === undefined) continue;
      if (c.firstRefusalAt === undefined) missingBlocks++;
      else blockLatencies.push((c.firstRefusalAt - (over + GRACE_S * 1000)) / 1000);
    }

    // History events in the window, from Temporal's histories of every run.
    let historyEvents = 0;
    // Where they go (to stderr): by customer kind and by event type.
    const byKind = { light: 0, heavy: 0 };
    const byType = new Map<string, number>();
    // Up to the close: what the window's usage costs includes the flush and what a lagging worker
    // completes during the settle time, when no usage arrives; the close's own events come after.
    const windowTo = closeFrom;
    await inParallel(customers, 32, async (c) => {
      const described = await client.workflow.getHandle(workflowIdFor(c.id)).describe();
      let runId: string | undefined = described.raw.workflowExecutionInfo?.firstRunId ?? undefined;
      while (runId) {
        const history = await client.workflow.getHandle(workflowIdFor(c.id), runId).fetchHistory();
        runId = undefined;
        for (const event of history.events ?? []) {
          const t = Number(event.eventTime?.seconds ?? 0) * 1000 + Math.floor((event.eventTime?.nanos ?? 0) / 1e6);
          if (t >= windowStart && t < windowTo) {
            historyEvents++;
            byKind[c.heavy ? 'heavy' : 'light']++;
            const type = proto.temporal.api.enums.v1.EventType[event.eventType ?? 0] ?? String(event.eventType);
            byType.set(type, (byType.get(type) ?? 0) + 1);
          }
          const next = event.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
          if (next && t < windowTo) runId = next;
        }
      }
    });

    const heavyCount = customers.filter((c) => c.heavy).length;
    const perHour = (events: number, n: number) => Math.round(events / Math.max(1, n) / (actualWindow / 3600));
    log(
      `history events per customer-hour: light customers ${perHour(byKind.light, customers.length - heavyCount)}, heavy (crossing) customers ${perHour(byKind.heavy, heavyCount)}`,
    );
    log(`history events in the window by type (per customer-hour, all customers):`);
    for (const [type, n] of [...byType].sort((a, b) => b[1] - a[1])) log(`  ${String(perHour(n, customers.length)).padStart(6)}  ${type}`);
    log(`quota bookkeeping statements during the window (pg_stat_statements calls):`);
    let bookkeeping = 0;
    for (const s of statements.rows) {
      bookkeeping += Number(s.calls);
      log(`  ${s.calls.padStart(8)}  ${s.query.replace(/\s+/g, ' ').slice(0, 140)}`);
    }
    const p99 = (values: number[]) =>
      percentile(
        [...values].sort((a, b) => a - b),
        99,
      ).toFixed(2);
    const missing = (n: number, of: number, what: string) => (n ? ` (${n} of ${of} without ${what})` : '');
    console.log(`customers: ${active} active`);
    console.log(`temporal history events per active customer-hour: ${Math.round(historyEvents / active / (actualWindow / 3600))}`);
    console.log(
      `threshold notice latency p99: ${p99(noticeLatencies)} s${missing(missingNotices, noticeLatencies.length + missingNotices, 'a notice')}`,
    );
    console.log(
      `hard limit block latency p99: ${p99(blockLatencies)} s${missing(missingBlocks, blockLatencies.length + missingBlocks, 'a block in the window')}`,
    );
    console.log(`period close: ${paid} invoices finalized and charged in ${closeSeconds.toFixed(1)} s`);
    console.log(`workflow totals equal stored events: ${unequal.length === 0 ? 'yes' : 'no'}`);
    console.log(`postgres statements per second on quota bookkeeping: ${(bookkeeping / actualWindow).toFixed(1)}`);
    if (unequal.length > 0 || paid < CUSTOMERS || missingNotices > 0 || missingBlocks > 0) process.exitCode = 1;
  } finally {
    await Promise.all(apis.map((api) => api.stop()));
    for (const child of children.reverse()) await child.stop();
    await connection.close();
    await pool.end();
    await temporal.stop();
    await db.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Per usage level: for each customer that reached it, the received_at of the stored batch (one
 * ingest request) that took its usage to that level, in epoch ms.
 */
async function crossingTimes(pool: Pool, levels: number[]): Promise<Map<number, Map<string, number>>> {
  const { rows } = await pool.query<{ external_id: string; level: string; at: Date }>(
    `with batches as (
       select customer_short_id, received_at, count(*) as n from usage_events group by 1, 2
     ), running as (
       select customer_short_id, received_at, sum(n) over (partition by customer_short_id order by received_at) as total from batches
     )
     select c.external_id, l.level::text, min(r.received_at) as at
       from running r join customers c on c.short_id = r.customer_short_id
       cross join unnest($1::numeric[]) as l(level)
      where r.total >= l.level
      group by 1, 2`,
    [levels],
  );
  const result = new Map<number, Map<string, number>>();
  for (const r of rows) {
    const level = Number(r.level);
    if (!result.has(level)) result.set(level, new Map());
    result.get(level)!.set(r.external_id, r.at.getTime());
  }
  return result;
}

await main();
// Exit hooks (embedded PostgreSQL's) would otherwise end the process with 0 whatever happened.
process.exit(process.exitCode ?? 0);
