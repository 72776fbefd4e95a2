/** The API alone, for deployments that run API and worker as separate processes (docker-compose). */
import { loadConfig } from '../config';
import { migrate } from '../db/migrate';
import { createLifecycle } from './lifecycle';
import { entryLogger } from '../logger';
import { connectServices, requireExternal, startApi } from './services';

const config = loadConfig();
const logger = entryLogger(config.LOG_LEVEL);
const lifecycle = createLifecycle(logger);

async function main(): Promise<void> {
  const { databaseUrl, temporalAddress } = requireExternal(config);
  await migrate(databaseUrl, logger);
  const services = await connectServices(config, databaseUrl, temporalAddress, logger);
  lifecycle.defer('connections', services.close);
  const api = await startApi(config, services, logger);
  lifecycle.defer('API', api.stop);
  logger.info({ api: `http://${config.HOST}:${config.PORT}` }, 'API ready');
}

main().catch((err: unknown) => {
  logger.error({ err }, 'API failed to start');
  void lifecycle.shutdown('start failure', 1);
});
