import { lifecycleStepDone, type LifecycleStep, type LifecycleStepFailed } from '../subscriptions/service';
import type { SubscriptionLifecycle } from '../subscriptions/lifecycle';
import type { Subscription } from '../subscriptions/store';
import { CliError, exitCodes, type CliContext } from './context';

/** How long a workflow step may take: a change of plan waits for a worker to apply it. */
const STEP_DEADLINE_MS = 30_000;

/** Temporal did not answer: the command could not run, rather than being refused. */
class TemporalUnreachable extends Error {}

/**
 * The billing workflows on the Temporal server the environment names, reached for one step at a
 * time: each step connects, runs under a deadline, and disconnects.
 */
export function cliSubscriptionLifecycle(ctx: CliContext): SubscriptionLifecycle {
  const run = async (step: LifecycleStep, subscription: Subscription): Promise<void> => {
    // Loaded here only: the Temporal client and the workflow definitions add half a second to every other command's start.
    const [{ Client, Connection }, { temporalSubscriptionLifecycle }] = await Promise.all([
      import('@temporalio/client'),
      import('../subscriptions/temporal-lifecycle'),
    ]);
    const address = ctx.config.TEMPORAL_ADDRESS ?? `127.0.0.1:${ctx.config.TEMPORAL_PORT}`;
    const connection = await Connection.connect({ address, connectTimeout: '5s' }).catch((err: unknown) => {
      throw new TemporalUnreachable(
        `cannot reach Temporal at ${address} (start it with \`npm start\`, or set TEMPORAL_ADDRESS): ${err instanceof Error ? err.message : String(err)}`,
      );
    });
    try {
      const client = new Client({ connection, namespace: ctx.config.TEMPORAL_NAMESPACE });
      const lifecycle = temporalSubscriptionLifecycle({
        client,
        taskQueue: ctx.config.TEMPORAL_TASK_QUEUE,
        allowedLatenessMs: ctx.config.ALLOWED_LATENESS_SECONDS * 1000,
        dunning: ctx.config.DUNNING_SCHEDULE,
        usageReportIntervalMs: ctx.config.USAGE_REPORT_INTERVAL_SECONDS * 1000,
      });
      await client.withDeadline(Date.now() + STEP_DEADLINE_MS, () => lifecycle[step](subscription));
    } finally {
      await connection.close();
    }
  };
  return {
    started: (subscription) => run('started', subscription),
    canceled: (subscription) => run('canceled', subscription),
    planChanged: (subscription) => run('planChanged', subscription),
    spendThresholdsChanged: (subscription) => run('spendThresholdsChanged', subscription),
    spendCapChanged: (subscription) => run('spendCapChanged', subscription),
  };
}

/** A step that failed after the commit, in the CLI's words: Temporal unreachable could not run; any other failure is a failure. */
export function stepFailedError({ details, step, cause }: LifecycleStepFailed): CliError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new CliError(
    `subscription ${details.subscription} is saved, but its billing workflow could not be ${lifecycleStepDone[step]}: ${why}; retry the same command`,
    cause instanceof TemporalUnreachable ? exitCodes.cannotRun : exitCodes.failed,
  );
}
