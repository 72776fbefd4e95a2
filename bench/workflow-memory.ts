/**
 * `npm run bench:workflow-memory`: what one cached workflow costs a worker, with the domain
 * modules shared between the workflows of a worker thread (as the workers run,
 * `sharedWorkflowModules` in src/temporal/worker.ts) and without (each workflow evaluating its own
 * copy of zod, decimal.js and the domain code). How many workflows a worker can keep cached
 * decides whether a billing workflow's next task replays its whole history.
 *
 * Each variant in a Node process of its own (so one does not reuse the other's freed memory): a
 * worker, a real Temporal dev server, BENCH_WORKFLOWS idle workflows (the real workflows' bundle,
 * plus one that only waits) started and each sent a signal, so each has run two tasks and stays
 * cached; the process's resident memory is read before and after (after a GC) and the difference
 * divided by the number of workflows.
 *
 *   BENCH_WORKFLOWS (1000)
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { temporalCliPath } from '../src/temporal/binaries';
import { sharedWorkflowModules } from '../src/temporal/worker';

const workflows = Number(process.env.BENCH_WORKFLOWS ?? 1000);
const workflowsPath = fileURLToPath(new URL('./fixtures/idle-workflow.ts', import.meta.url));
const quiet = () => undefined;
const silent = { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet };

/** Bytes of resident memory per cached workflow for a worker whose bundle preloads these modules. */
async function bytesPerCachedWorkflow(temporal: TestWorkflowEnvironment, variant: string, preloadModules: string[]): Promise<number> {
  const taskQueue = `memory-${variant}`;
  const workflowBundle = await bundleWorkflowCode({ workflowsPath, preloadModules, logger: silent });
  const worker = await Worker.create({
    connection: temporal.nativeConnection,
    taskQueue,
    workflowBundle,
    maxCachedWorkflows: workflows + 100,
  });
  return worker.runUntil(async () => {
    await settle();
    const before = process.memoryUsage.rss();
    const ids = Array.from({ length: workflows }, (_, i) => `${taskQueue}-${i}`);
    await inChunks(ids, (workflowId) => temporal.client.workflow.start('idleWorkflow', { taskQueue, workflowId }));
    // A signal per workflow: a second task, so each one's first task has completed and it is kept in the cache.
    await inChunks(ids, (workflowId) => temporal.client.workflow.getHandle(workflowId).signal('poke'));
    await settle();
    return (process.memoryUsage.rss() - before) / workflows;
  });
}

async function settle(): Promise<void> {
  await sleep(2000);
  globalThis.gc?.();
}

async function inChunks(ids: string[], each: (id: string) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < ids.length; i += 100) await Promise.all(ids.slice(i, i + 100).map(each));
}

const variants = { shared: sharedWorkflowModules, own: [] };
const variant = process.argv[2] as keyof typeof variants | undefined;
if (variant) {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const temporal = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: temporalCliPath() }, ui: false },
  });
  try {
    console.log(await bytesPerCachedWorkflow(temporal, variant, variants[variant]));
  } finally {
    await temporal.teardown();
  }
} else {
  const measure = (name: keyof typeof variants) =>
    Number(
      execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), name], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .at(-1),
    );
  const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(2);
  const shared = measure('shared');
  const own = measure('own');
  console.log(`cached workflows per variant: ${workflows}`);
  console.log(`worker memory per cached workflow, domain modules shared (as workers run): ${mb(shared)} MB`);
  console.log(`worker memory per cached workflow, each workflow its own modules: ${mb(own)} MB`);
}
