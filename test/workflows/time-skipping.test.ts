import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { timeSkippingEnvironment } from '../support/temporal';
import { Worker } from '@temporalio/worker';
import { sleepFor } from './fixtures/sleeper';

let env: TestWorkflowEnvironment;

before(async () => {
  env = await timeSkippingEnvironment();
});

after(async () => {
  await env?.teardown();
});

test('a workflow sleeping 31 days completes in seconds on the time-skipping server', async () => {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: 'time-skipping',
    workflowsPath: fileURLToPath(new URL('./fixtures/sleeper.ts', import.meta.url)),
  });
  const wallStart = Date.now();
  const result = await worker.runUntil(
    env.client.workflow.execute(sleepFor, { args: ['31 days'], workflowId: 'sleeper', taskQueue: 'time-skipping' }),
  );
  const wallMs = Date.now() - wallStart;
  const sleptMs = Date.parse(result.woke) - Date.parse(result.fellAsleep);
  assert.ok(sleptMs >= 31 * 24 * 3600 * 1000, `workflow clock advanced ${sleptMs} ms`);
  // Far below 31 days even on a loaded machine (a cold test server and worker take seconds).
  assert.ok(wallMs < 120_000, `took ${wallMs} ms of wall time`);
});
