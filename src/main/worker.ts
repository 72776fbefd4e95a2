/** The Temporal worker alone, for deployments that scale workers apart from the API. */
import { loadConfig } from '../config';
import { migrate } from '../db/migrate';
import { installTemporalRuntime } from '../temporal/runtime';
import { createLifecycle } from './lifecycle';
import { entryLogger } from '../logger';
import { requireExternal, startWorker } from './services';

const config = loadConfig();
const logger = entryLogger(config.LOG_LEVEL);
installTemporalRuntime(logger);
const lifecycle = createLifecycle(logger);

async function main(): Promise<void> {
  const { databaseUrl, temporalAddress } = requireExternal(config);
  await migrate(databaseUrl, logger);
  const worker = await startWorker(config, databaseUrl, temporalAddress);
  lifecycle.defer('worker', worker.stop);
  worker.done.catch((err: unknown) => {
    logger.error({ err }, 'worker crashed');
    void lifecycle.shutdown('worker crash', 1);
  });
  logger.info({ taskQueue: config.TEMPORAL_TASK_QUEUE, temporalAddress }, 'worker running');
}

main().catch((err: unknown) => {
  logger.error({ err }, 'worker failed to start');
  void lifecycle.shutdown('start failure', 1);
});
