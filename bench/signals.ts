/**
 * `npm run bench:signals`: how many usage signals the billing workflows receive per 1,000 stored
 * events under sustained ingest (urgent ones, near a published decision point, and slow ones, every
 * report interval), and whether the workflows' totals match the database exactly once the API has
 * stopped (stopping flushes every pending report).
 * Runs the production API composition with billing (usage signaler included), a real Temporal
 * dev server and a worker with the real activities, on a durable PostgreSQL; every customer has
 * an active subscription (one running workflow each). Batches go to random customers.
 *
 *   BENCH_SECONDS (20)  BENCH_CONNECTIONS (8)  BENCH_CUSTOMERS (50)  BENCH_BATCH (100)
 *   BENCH_REPORT_INTERVAL_SECONDS (300, as USAGE_REPORT_INTERVAL_SECONDS)  BENCH_SIGNAL_MARGIN (0.1)
 */
import { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import autocannon from 'autocannon';
import { pino } from 'pino';
import { freePort } from '../scripts/free-port';
import { createActivities } from '../src/activities';
import { systemClock } from '../src/clock';
import { createPool } from '../src/db/pool';
import { defaultEventTimePolicy } from '../src/domain/metering/event-time';
import { startEntitlements } from '../src/entitlements/entitlements';
import { startKeys } from '../src/keys/keys';
import { parsePeppers } from '../src/keys/pepper';
import { buildApiApp } from '../src/main/api-app';
import { createHttpPaymentProvider } from '../src/provider/http-payment-provider';
import { temporalCliPath } from '../src/temporal/binaries';
import { billingState, workflowIdFor } from '../src/workflows/billing-period';
import { workflowsPath } from '../src/temporal/worker';
import { issueBenchKey, serveBenchHttp, startBenchDatabase } from './support';

Runtime.install({ logger: new DefaultLogger('WARN') });

async function main(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 20);
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 8);
  const customers = Number(process.env.BENCH_CUSTOMERS ?? 50);
  const batch = Number(process.env.BENCH_BATCH ?? 100);
  const reportIntervalSeconds = Number(process.env.BENCH_REPORT_INTERVAL_SECONDS ?? 300);
  const signalMargin = Number(process.env.BENCH_SIGNAL_MARGIN ?? 0.1);
  const taskQueue = 'bench-signals';

  const db = await startBenchDatabase('signals');
  const temporal = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: temporalCliPath() }, ui: false },
  });
  const pool = createPool(db.url, 10);
  const logger = pino({ level: 'warn' });
  const keys = await startKeys({
    pool,
    databaseUrl: db.url,
    peppers: parsePeppers(`1:${'bench-pepper-'.repeat(4)}`),
    clock: systemClock,
    logger,
    cache: { ttlSeconds: 60, maxEntries: 10_000 },
    defaults: { ratePerSecond: 1_000_000, burst: 1_000_000 },
  });
  const entitlements = await startEntitlements({
    databaseUrl: db.url,
    clock: systemClock,
    logger,
    upgradeUrl: '/upgrade',
    topUpUrl: '/top-up',
  });
  const client = new Client({ connection: temporal.connection });
  const { app, stop } = buildApiApp({
    pool,
    keys,
    entitlements: entitlements.store,
    clock: systemClock,
    logger,
    readiness: {},
    timePolicy: defaultEventTimePolicy,
    billing: { client, taskQueue, allowedLatenessMs: 300_000, dunning: [], usageReportIntervalMs: reportIntervalSeconds * 1000 },
    usageSignals: { reportIntervalSeconds, signalMargin },
  });
  const port = await freePort();
  const api = await serveBenchHttp(app, port);
  const worker = await Worker.create({
    connection: temporal.nativeConnection,
    taskQueue,
    workflowsPath,
    // Monthly periods: nothing closes during the run, so the provider is never called.
    activities: createActivities({
      pool,
      clock: systemClock,
      webhookTimeoutMs: 1000,
      lookbackInvoices: 3,
      dunning: [],
      provider: createHttpPaymentProvider({ baseUrl: 'http://127.0.0.1:9', timeoutMs: 1000 }),
    }),
  });
  const running = worker.run();

  try {
    const secret = await issueBenchKey(db.url, ['events:write', 'billing:admin', 'billing:read']);
    const base = `http://127.0.0.1:${port}`;
    const headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json' };
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${base}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
      if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    };
    await post('/v1/meters', { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count' });
    await post('/v1/plans', {
      id: 'bench',
      name: 'Bench',
      currency: 'USD',
      charges: [{ meter: 'api_calls', model: 'per_unit', unit_price: '0.001' }],
      interval: { kind: 'calendar_month' },
      limits: [{ meter: 'api_calls', soft_thresholds: [{ percent: 80 }], hard_limit: '1000000000', at_hard_limit: 'allow' }],
    });
    for (let c = 0; c < customers; c++) {
      await post('/v1/customers', { external_id: `cust-${c}`, name: `Customer ${c}`, currency: 'USD' });
      await post('/v1/subscriptions', { customer: `cust-${c}`, plan: 'bench' });
    }

    let n = 0;
    const bodyFor = () => {
      const customer = `cust-${Math.floor(Math.random() * customers)}`;
      return JSON.stringify(Array.from({ length: batch }, () => ({ id: `e-${n++}`, customer, type: 'api_call' })));
    };
    const metric = async (name: string) =>
      Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(`${base}/metrics`)).text())?.[1] ?? 0);
    const duringRun = { urgent: 0, slow: 0 };
    const started = Date.now();
    const result = await autocannon({
      url: `${base}/v1/events`,
      connections,
      duration: seconds,
      method: 'POST',
      headers,
      requests: [{ setupRequest: (req) => ({ ...req, body: bodyFor() }) }],
    });
    const elapsed = (Date.now() - started) / 1000;
    duringRun.urgent = await metric('usage_reports_total\\{kind="urgent"\\}');
    duringRun.slow = await metric('usage_reports_total\\{kind="slow"\\}');
    await stop(); // flushes what the signaler still owes
    const signals = await metric('usage_signals_total');
    const signalled = await metric('usage_signal_events_total');
    const stored = Number((await pool.query<{ n: string }>('select count(*) as n from usage_events')).rows[0]!.n);

    // Signals are applied asynchronously: give the workflows a few seconds to catch up.
    let inWorkflows = 0;
    for (let tries = 0; tries < 50 && inWorkflows !== stored; tries++) {
      if (tries) await new Promise((r) => setTimeout(r, 200));
      inWorkflows = 0;
      for (let c = 0; c < customers; c++) {
        const state = await client.workflow.getHandle(workflowIdFor(`cust-${c}`)).query(billingState);
        inWorkflows += Number(state.meters.api_calls?.usage ?? 0);
      }
    }
    console.log(
      `POST /v1/events, ${connections} connections × ${batch}-event batches, ${seconds} s, ${customers} customers with a running billing workflow each`,
    );
    console.log(
      `stored events: ${stored.toLocaleString('en-US')} (${Math.round(stored / elapsed).toLocaleString('en-US')}/s; non-2xx ${result.non2xx}, errors ${result.errors})`,
    );
    console.log(
      `usage signals: ${signals.toLocaleString('en-US')} for ${signalled.toLocaleString('en-US')} events → ${((signals / stored) * 1000).toFixed(2)} signals per 1,000 events`,
    );
    console.log(
      `during the run (report interval ${reportIntervalSeconds} s, margin ${signalMargin}): ${duringRun.urgent} urgent, ${duringRun.slow} slow reports → ${(((duringRun.urgent + duringRun.slow) / customers / elapsed) * 3600).toFixed(1)} signals per customer-hour; at stop: ${signals - duringRun.urgent - duringRun.slow} flushed`,
    );
    console.log(
      `usage seen by the workflows: ${inWorkflows.toLocaleString('en-US')} (${inWorkflows === stored ? 'equals' : 'DIFFERS FROM'} the stored events)`,
    );
    if (inWorkflows !== stored || result.non2xx > 0) process.exitCode = 1;
  } finally {
    await api.close();
    worker.shutdown();
    await running;
    await entitlements.close();
    await keys.close();
    await pool.end();
    await temporal.teardown();
    await db.stop();
  }
}

await main();
