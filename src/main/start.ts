/**
 * `npm start`: the whole system on one machine. Starts (or reuses) the Temporal dev server with
 * its Web UI and an embedded PostgreSQL, applies migrations, then runs the worker and the API.
 * With DATABASE_URL and TEMPORAL_ADDRESS set it starts neither and uses those.
 */
import path from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../config';
import { ensureDatabase, startEmbeddedPostgres } from '../db/embedded';
import { migrate } from '../db/migrate';
import { redactPaths } from '../logger';
import { temporalCliPath } from '../temporal/binaries';
import { startTemporalDevServer } from '../temporal/dev-server';
import { installTemporalRuntime } from '../temporal/runtime';
import { closeServer, connectServices, startApi, startWorker } from './services';

const config = loadConfig();
const logger = pino({
  level: config.LOG_LEVEL,
  redact: { paths: redactPaths, censor: '[redacted]' },
  ...(process.stdout.isTTY ? { transport: { target: 'pino-pretty', options: { ignore: 'pid,hostname' } } } : {}),
});

installTemporalRuntime(logger);

const stops: Array<[string, () => Promise<unknown>]> = [];
let stopping = false;

async function shutdown(signal: string, code = 0): Promise<never> {
  if (stopping) {
    logger.warn('second signal: exiting now');
    process.exit(1);
  }
  stopping = true;
  logger.info({ signal }, 'shutting down');
  for (const [name, stop] of stops.reverse()) {
    try {
      await stop();
      logger.info(`${name} stopped`);
    } catch (err) {
      logger.error({ err }, `${name} did not stop cleanly`);
      code = 1;
    }
  }
  logger.flush();
  process.exit(code);
}
process.once('SIGINT', () => void shutdown('SIGINT'));
process.once('SIGTERM', () => void shutdown('SIGTERM'));

async function main(): Promise<void> {
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    const pg = await startEmbeddedPostgres({ dataDir: path.join(config.DATA_DIR, 'pg'), port: config.PG_PORT, logger });
    if (pg.startedHere) stops.push(['PostgreSQL', pg.stop]);
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
    if (temporal.startedHere) stops.push(['Temporal dev server', temporal.stop]);
    temporalAddress = temporal.address;
    temporalUi = `http://127.0.0.1:${config.TEMPORAL_UI_PORT}`;
  }

  const services = await connectServices(config, databaseUrl, temporalAddress);
  stops.push(['connections', services.close]);
  const worker = await startWorker(config, temporalAddress, logger);
  stops.push(['worker', worker.stop]);
  worker.done.catch((err: unknown) => {
    logger.error({ err }, 'worker crashed');
    void shutdown('worker crash', 1);
  });
  const server = await startApi(config, services, logger);
  stops.push(['API', () => closeServer(server)]);

  const api = `http://${config.HOST}:${config.PORT}`;
  logger.info(
    { api, docs: `${api}/docs`, temporalUi: temporalUi ?? `(external Temporal at ${temporalAddress})`, taskQueue: config.TEMPORAL_TASK_QUEUE },
    `meterflow is ready. API ${api} (docs ${api}/docs)` + (temporalUi ? `, Temporal UI ${temporalUi}` : '') + '. Ctrl-C stops everything started here.',
  );
}

main().catch((err: unknown) => {
  logger.error({ err }, 'start failed');
  void shutdown('start failure', 1);
});
