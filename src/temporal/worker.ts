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
}

export function createWorker(deps: WorkerDeps): Promise<Worker> {
  return Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: deps.taskQueue,
    activities: deps.activities,
    ...(deps.workflowBundle ? { workflowBundle: deps.workflowBundle } : { workflowsPath }),
  });
}
