import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config';
import { workerLimits } from '../../src/main/services';
import { DRAINED_START_TO_CLOSE_MS } from '../../src/workflows/activity-timeouts';
import { poolSizeFor } from '../../src/temporal/worker';

describe('worker limits (the period-close herd)', () => {
  it('come from config, and the worker pool holds a connection per activity and local-activity slot', () => {
    const limits = workerLimits(
      loadConfig({
        WORKER_MAX_CONCURRENT_ACTIVITIES: '12',
        WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES: '8',
        WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '30',
        WORKER_MAX_CACHED_WORKFLOWS: '500',
        WORKER_SHUTDOWN_GRACE_SECONDS: '45',
      }),
    );
    assert.deepEqual(limits, {
      maxConcurrentActivities: 12,
      maxConcurrentLocalActivities: 8,
      maxConcurrentWorkflowTasks: 30,
      maxCachedWorkflows: 500,
      shutdownGraceSeconds: 45,
    });
    assert.equal(poolSizeFor(limits, 10), 20);
    assert.equal(poolSizeFor(limits, 50), 50);
  });

  it('by default let in-flight activities drain for the longest startToClose that must drain (the period close)', () => {
    assert.ok(loadConfig({}).WORKER_SHUTDOWN_GRACE_SECONDS * 1000 >= DRAINED_START_TO_CLOSE_MS);
  });

  it('refuses a provider rate at which a charge could wait past half its startToClose for its turn', () => {
    assert.throws(
      () => loadConfig({ WORKER_MAX_CONCURRENT_ACTIVITIES: '100', PROVIDER_MAX_REQUESTS_PER_SECOND: '2' }),
      /PROVIDER_MAX_REQUESTS_PER_SECOND: a charge could wait 50000 ms for its turn/,
    );
    assert.equal(
      loadConfig({ WORKER_MAX_CONCURRENT_ACTIVITIES: '100', PROVIDER_MAX_REQUESTS_PER_SECOND: '0' }).PROVIDER_MAX_REQUESTS_PER_SECOND,
      0,
    );
    assert.equal(loadConfig({}).PROVIDER_MAX_REQUESTS_PER_SECOND, 50);
  });
});
