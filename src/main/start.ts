/**
 * `npm start`: the whole system on one machine. Starts (or reuses) the Temporal dev server with
 * its Web UI, an embedded PostgreSQL and the payment-provider simulator, applies migrations,
 * then runs the worker and the API.
 * With DATABASE_URL and TEMPORAL_ADDRESS set it starts neither and uses those.
 */
import path from 'node:path';
import { Client } from '@temporalio/client';
import { loadConfig } from '../config';
import { ensureDatabase, startEmbeddedPostgres } from '../db/embedded';
import { migrate } from '../db/migrate';
import { temporalCliPath } from '../temporal/binaries';
import { startTemporalDevServer } from '../temporal/dev-server';
import { installTemporalRuntime } from '../temporal/runtime';
import { runDemo } from './demo';
import { createLifecycle } from './lifecycle';
import { startProviderProcess } from './provider-process';
import { entryLogger } from '../logger';
import { connectServices, startApi, startWorker } from './services';

// `npm start -- --no-demo` or DEMO=false: the system without the demo.
const demoOff = process.argv.includes('--no-demo');
const loaded = loadConfig();
const demo = loaded.DEMO && !demoOff;
// The demo's 2-minute periods would wait 5 minutes for late events; unless set, it waits 30 s.
const config = demo && process.env.ALLOWED_LATENESS_SECONDS === undefined ? { ...loaded, ALLOWED_LATENESS_SECONDS: 30 } : loaded;
const logger = entryLogger(config.LOG_LEVEL);
installTemporalRuntime(logger);
const lifecycle = createLifecycle(logger);

async function main(): Promise<void> {
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    const pg = await startEmbeddedPostgres({ dataDir: path.join(config.DATA_DIR, 'pg'), port: config.PG_PORT, logger });
    if (pg.startedHere) lifecycle.defer('PostgreSQL', pg.stop);
    databaseUrl = await ensureDatabase(pg.url, 'meterflow');
  }
  await migrate(databaseUrl, logger);

  let temporalAddress = config.TEMPORAL_ADDRESS;
  let temporalUi: string | undefined;
  if (!temporalAddress) {
    const temporal = await startTemporalDevServer({
      cliPath: temporalCliPath(),
      port: config.TEMPORAL_PORT,
      uiPort: config.TEMPORAL_UI_PORT,
      namespace: config.TEMPORAL_NAMESPACE,
      dbFile: path.join(config.DATA_DIR, 'temporal.db'),
      logger,
    });
    if (temporal.startedHere) lifecycle.defer('Temporal dev server', temporal.stop);
    temporalAddress = temporal.address;
    temporalUi = `http://127.0.0.1:${config.TEMPORAL_UI_PORT}`;
  }

  if (!config.PROVIDER_URL) {
    const provider = await startProviderProcess({
      port: config.PROVIDER_PORT,
      dataDir: config.DATA_DIR,
      logLevel: config.LOG_LEVEL,
      logger,
    });
    if (provider.startedHere) lifecycle.defer('payment-provider simulator', provider.stop);
  }

  const services = await connectServices(config, databaseUrl, temporalAddress, logger);
  lifecycle.defer('connections', services.close);
  const worker = await startWorker(config, databaseUrl, temporalAddress);
  lifecycle.defer('worker', worker.stop);
  worker.done.catch((err: unknown) => {
    logger.error({ err }, 'worker crashed');
    void lifecycle.shutdown('worker crash', 1);
  });
  const running = await startApi(config, services, logger);
  lifecycle.defer('API', running.stop);

  const api = `http://${config.HOST}:${config.PORT}`;
  if (demo) {
    const client = new Client({ connection: services.temporal, namespace: config.TEMPORAL_NAMESPACE });
    await runDemo({ api, temporalUi, pool: services.pool, keys: services.keys, client, dataDir: config.DATA_DIR, logger }).then(
      (stop) => lifecycle.defer('demo', stop),
      (err: unknown) => logger.error({ err }, 'demo failed (the system itself is up)'),
    );
  }
  logger.info(
    { api, docs: `${api}/docs`, temporalUi: temporalUi ?? `(external Temporal at ${temporalAddress})` },
    `meterflow is ready. API ${api} (docs ${api}/docs)` +
      (temporalUi ? `, Temporal UI ${temporalUi}` : '') +
      '. Ctrl-C stops everything started here.',
  );
}

main().catch((err: unknown) => {
  logger.error({ err }, 'start failed');
  void lifecycle.shutdown('start failure', 1);
});
