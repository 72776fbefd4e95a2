/**
 * Applies pending migrations and exits: the Kubernetes Job that runs before a rollout
 * (deploy/k8s/migrate). The API and the worker migrate at start too, under the same advisory lock,
 * so this only moves the work (and a failing migration) ahead of the new pods.
 */
import { loadConfig } from '../config';
import { migrate } from '../db/migrate';
import { entryLogger } from '../logger';

const config = loadConfig();
const logger = entryLogger(config.LOG_LEVEL);

async function main(): Promise<void> {
  if (!config.DATABASE_URL) throw new Error('DATABASE_URL must be set');
  const applied = await migrate(config.DATABASE_URL, logger);
  logger.info({ applied: applied.length }, 'migrations up to date');
}

main().then(
  () => {
    logger.flush();
    process.exit(0);
  },
  (err: unknown) => {
    logger.error({ err }, 'migrations failed');
    logger.flush();
    process.exit(1);
  },
);
