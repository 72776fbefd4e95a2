import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const toolsBin = fileURLToPath(new URL('../../.tools/bin/', import.meta.url));

function resolveBinary(override: string | undefined, name: string, envVar: string): string {
  const candidate = override || `${toolsBin}${name}`;
  if (!existsSync(candidate)) {
    throw new Error(
      `${name} not found at ${candidate}. Run scripts/provision-temporal.sh (npm start and npm test run it ` +
        `for you), or set ${envVar} to an installed ${name}.`,
    );
  }
  return candidate;
}

/** The Temporal CLI (`temporal server start-dev`: dev server and Web UI). */
export const temporalCliPath = (env = process.env) => resolveBinary(env.TEMPORAL_CLI_PATH, 'temporal', 'TEMPORAL_CLI_PATH');

/** Temporal's time-skipping test server, as `@temporalio/testing` runs it: `<exe> <port>`. */
export const temporalTestServerPath = (env = process.env) =>
  resolveBinary(env.TEMPORAL_TEST_SERVER_PATH, 'temporal-test-server', 'TEMPORAL_TEST_SERVER_PATH');
