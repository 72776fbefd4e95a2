import type { Server } from 'node:http';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import type { Logger } from 'pino';
import { systemClock } from '../clock';
import type { Config } from '../config';
import { createPool, type Pool } from '../db/pool';
import { startEntitlements, type Entitlements } from '../entitlements/entitlements';
import { startKeys, type Keys } from '../keys/keys';
import { loadPeppers } from '../keys/pepper';
import { webhookTargetPolicy } from '../domain/webhook-target-policy';
import { issuerFromConfig } from '../invoices/issuer';
import { createLogger } from '../logger';
import { createWorker, poolSizeFor, type WorkerLimits } from '../temporal/worker';
import { createActivities } from '../activities';
import { createHttpPaymentProvider } from '../provider/http-payment-provider';
import { buildApiApp } from './api-app';
import { serveHttp } from './http-server';

/** The long-lived pieces of one process; `close()` releases them in reverse order. */
export interface Services {
  pool: Pool;
  temporal: Connection;
  /** API keys: verification cache kept current by its own LISTEN connection. */
  keys: Keys;
  /** Blocked meters in memory, kept current by their own LISTEN connection. */
  entitlements: Entitlements;
  close(): Promise<void>;
}

export async function connectServices(
  config: Config,
  databaseUrl: string,
  temporalAddress: string,
  logger = createLogger(config.LOG_LEVEL),
): Promise<Services> {
  const { peppers, source } = await loadPeppers(config);
  if (source === 'dev-file')
    logger.warn('API_KEY_PEPPERS is not set: using the development pepper kept in DATA_DIR (refused when NODE_ENV=production)');
  const pool = createPool(databaseUrl, config.DATABASE_POOL_SIZE);
  const keys = await startKeys({
    pool,
    databaseUrl,
    peppers,
    clock: systemClock,
    logger,
    cache: { ttlSeconds: config.API_KEY_CACHE_TTL_SECONDS, maxEntries: config.API_KEY_CACHE_MAX_ENTRIES },
    defaults: { ratePerSecond: config.API_KEY_DEFAULT_RATE_PER_SECOND, burst: config.API_KEY_DEFAULT_BURST },
    authFailures: { limit: config.AUTH_FAILURE_LIMIT, windowSeconds: config.AUTH_FAILURE_WINDOW_SECONDS },
  });
  const entitlements = await startEntitlements({
    databaseUrl,
    clock: systemClock,
    logger,
    upgradeUrl: config.UPGRADE_URL,
    topUpUrl: config.TOP_UP_URL,
  });
  const temporal = await Connection.connect({ address: temporalAddress });
  return {
    pool,
    temporal,
    keys,
    entitlements,
    close: async () => {
      await temporal.close();
      await entitlements.close();
      await keys.close();
      await pool.end();
    },
  };
}

// The first admin key comes from the CLI, so its secret reaches only the operator's terminal,
// never the server log.
const BOOTSTRAP_COMMAND = 'npm run cli -- keys create --name admin --scopes keys:admin,billing:admin,billing:read,usage:read,events:write';

export interface RunningApi {
  server: Server;
  /** Stops accepting requests, then flushes usage still owed to the billing workflows. */
  stop(): Promise<void>;
}

export async function startApi(config: Config, services: Services, logger: Logger): Promise<RunningApi> {
  const { app, stop } = buildApiApp({
    pool: services.pool,
    keys: services.keys,
    entitlements: services.entitlements.store,
    clock: systemClock,
    logger,
    readiness: {
      postgres: () => services.pool.query('select 1'),
      temporal: () => services.temporal.healthService.check({}),
    },
    timePolicy: { maxFutureSkewMs: config.EVENT_MAX_FUTURE_SKEW_SECONDS * 1000, lateAfterMs: config.EVENT_LATE_AFTER_SECONDS * 1000 },
    billing: {
      client: new Client({ connection: services.temporal, namespace: config.TEMPORAL_NAMESPACE }),
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      allowedLatenessMs: config.ALLOWED_LATENESS_SECONDS * 1000,
      dunning: config.DUNNING_SCHEDULE,
      usageReportIntervalMs: config.USAGE_REPORT_INTERVAL_SECONDS * 1000,
    },
    webhookTargets: webhookTargetPolicy(config.WEBHOOK_ALLOWED_TARGETS),
    provider: createHttpPaymentProvider({ baseUrl: providerUrl(config), timeoutMs: config.PROVIDER_TIMEOUT_MS }),
    usageSignals: { reportIntervalSeconds: config.USAGE_REPORT_INTERVAL_SECONDS, signalMargin: config.USAGE_SIGNAL_MARGIN },
    lateUsageLookbackInvoices: config.LATE_USAGE_LOOKBACK_INVOICES,
    ...(config.PORTAL_UPGRADE_URL ? { portalUpgradeUrl: config.PORTAL_UPGRADE_URL } : {}),
  });
  if (!(await services.keys.service.hasUsableAdminKey())) {
    logger.warn(`No API key can administer keys yet. Create the first one with: ${BOOTSTRAP_COMMAND}`);
  }
  const http = await serveHttp(app, {
    port: config.PORT,
    host: config.HOST,
    keepAliveTimeoutSeconds: config.HTTP_KEEP_ALIVE_TIMEOUT_SECONDS,
  });
  return {
    server: http.server,
    stop: async () => {
      await http.close();
      await stop();
    },
  };
}

/** The payment provider's base URL: PROVIDER_URL, or the local simulator. */
export const providerUrl = (config: Config) => config.PROVIDER_URL ?? `http://127.0.0.1:${config.PROVIDER_PORT}`;

export interface RunningWorker {
  worker: Worker;
  /** Resolves when the worker has drained and stopped; rejects if it crashed. */
  done: Promise<void>;
  stop(): Promise<void>;
}

/** The worker's slots and cache, from config (README "Scale"). */
export const workerLimits = (config: Config): WorkerLimits => ({
  maxConcurrentActivities: config.WORKER_MAX_CONCURRENT_ACTIVITIES,
  maxConcurrentLocalActivities: config.WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES,
  maxConcurrentWorkflowTasks: config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
  maxCachedWorkflows: config.WORKER_MAX_CACHED_WORKFLOWS,
  shutdownGraceSeconds: config.WORKER_SHUTDOWN_GRACE_SECONDS,
});

export async function startWorker(config: Config, databaseUrl: string, temporalAddress: string): Promise<RunningWorker> {
  const connection = await NativeConnection.connect({ address: temporalAddress });
  const limits = workerLimits(config);
  const pool = createPool(databaseUrl, poolSizeFor(limits, config.DATABASE_POOL_SIZE));
  const worker = await createWorker({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    limits,
    activities: createActivities({
      pool,
      clock: systemClock,
      webhookTimeoutMs: 10_000,
      webhookTargets: webhookTargetPolicy(config.WEBHOOK_ALLOWED_TARGETS),
      lookbackInvoices: config.LATE_USAGE_LOOKBACK_INVOICES,
      dunning: config.DUNNING_SCHEDULE,
      issuer: issuerFromConfig(config),
      provider: createHttpPaymentProvider({
        baseUrl: providerUrl(config),
        timeoutMs: config.PROVIDER_TIMEOUT_MS,
        maxRequestsPerSecond: config.PROVIDER_MAX_REQUESTS_PER_SECOND,
      }),
    }),
  });
  const done = worker.run().finally(async () => {
    await connection.close();
    await pool.end();
  });
  return {
    worker,
    done,
    stop: async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await done;
    },
  };
}

/** Separate API / worker processes never start servers: they need both addresses. */
export function requireExternal(config: Config): { databaseUrl: string; temporalAddress: string } {
  const missing = [!config.DATABASE_URL && 'DATABASE_URL', !config.TEMPORAL_ADDRESS && 'TEMPORAL_ADDRESS'].filter(Boolean);
  if (!config.DATABASE_URL || !config.TEMPORAL_ADDRESS) {
    throw new Error(`${missing.join(' and ')} must be set (use \`npm start\` for the all-in-one local stack).`);
  }
  return { databaseUrl: config.DATABASE_URL, temporalAddress: config.TEMPORAL_ADDRESS };
}
