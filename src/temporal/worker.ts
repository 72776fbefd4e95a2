import { fileURLToPath } from 'node:url';
import { type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { WorkerActivities } from '../workflows/activities';

/** Entry module of the workflow bundle: everything it imports must be deterministic. */
export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface WorkerDeps {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  /** Typed from the workflows' activity interfaces: a missing or misnamed activity fails the type check. */
  activities: WorkerActivities;
  /** A prebuilt bundle (tests build it once); by default the worker bundles `workflowsPath`. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Slots and cache size; unset, Temporal's defaults (tests). Production passes config (services.ts). */
  limits?: WorkerLimits;
}

/**
 * How much one worker process takes on at once. A task beyond its slots stays in Temporal's task
 * queue, where no timeout runs (the activities set no scheduleToStart), so a herd of 10,000
 * period closes queues there instead of timing out; an activity that holds a slot runs against
 * its startToClose, so everything it waits for inside (a pool connection, the provider's rate)
 * must be bounded well below it: see `poolSizeFor` and PROVIDER_MAX_REQUESTS_PER_SECOND.
 */
export interface WorkerLimits {
  maxConcurrentActivities: number;
  maxConcurrentLocalActivities: number;
  maxConcurrentWorkflowTasks: number;
  maxCachedWorkflows: number;
  /** How long in-flight activities may run on after `shutdown()` before they are cancelled. */
  shutdownGraceSeconds: number;
}

/**
 * The worker's pool: at least one connection per activity and local-activity slot, so an activity
 * never waits for a connection inside its startToClose (each holds at most one at a time).
 */
export const poolSizeFor = (limits: WorkerLimits, configured: number) =>
  Math.max(configured, limits.maxConcurrentActivities + limits.maxConcurrentLocalActivities);

export function createWorker(deps: WorkerDeps): Promise<Worker> {
  return Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: deps.taskQueue,
    activities: deps.activities,
    ...(deps.limits
      ? {
          maxConcurrentActivityTaskExecutions: deps.limits.maxConcurrentActivities,
          maxConcurrentLocalActivityExecutions: deps.limits.maxConcurrentLocalActivities,
          maxConcurrentWorkflowTaskExecutions: deps.limits.maxConcurrentWorkflowTasks,
          maxCachedWorkflows: deps.limits.maxCachedWorkflows,
          shutdownGraceTime: deps.limits.shutdownGraceSeconds * 1000,
        }
      : {}),
    ...(deps.workflowBundle ? { workflowBundle: deps.workflowBundle } : { workflowsPath }),
  });
}
