import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { temporalCliPath, temporalTestServerPath } from '../../src/temporal/binaries';

// Worker state changes and the like are noise in test output; warnings and errors still show.
Runtime.install({ logger: new DefaultLogger('WARN') });

/** Temporal's time-skipping test server, from the binary provisioned by scripts/provision-temporal.sh. */
export const timeSkippingEnvironment = () =>
  TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: temporalTestServerPath() } },
  });

/** A real Temporal dev server (the CLI that `npm start` runs), in memory, on a free port. */
export const localEnvironment = () =>
  TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: temporalCliPath() }, ui: false },
  });
