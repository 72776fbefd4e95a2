import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { temporalCliPath, temporalTestServerPath } from '../../src/temporal/binaries';

// Worker state changes and the like are noise in test output; warnings and errors still show.
Runtime.install({ logger: new DefaultLogger('WARN') });

const START_ATTEMPTS = 4;

/**
 * Starts an SDK-managed Temporal server, again when it was not up in time. The SDK gives a server
 * a fixed 5 s to accept connections and then kills it; on a machine whose cores are busy the first
 * start can take longer (a cold binary, a busy scheduler), which is no failure of the test.
 */
export async function startTemporal(start: () => Promise<TestWorkflowEnvironment>): Promise<TestWorkflowEnvironment> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= START_ATTEMPTS || !/did not start within/.test(String(err))) throw err;
    }
  }
}

/** Temporal's time-skipping test server, from the binary provisioned by scripts/provision-temporal.sh. */
export const timeSkippingEnvironment = () =>
  startTemporal(() =>
    TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: temporalTestServerPath() } },
    }),
  );

/** A real Temporal dev server (the CLI that `npm start` runs), in memory, on a free port; `extraArgs` go to `server start-dev`. */
export const localEnvironment = (extraArgs: string[] = []) =>
  startTemporal(() =>
    TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: temporalCliPath() }, ui: false, extraArgs },
    }),
  );
