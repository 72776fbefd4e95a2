import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { WorkflowContinuedAsNewError, WorkflowNotFoundError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { Decimal } from '../../src/domain/money';
import { periodContaining } from '../../src/domain/periods';
import type { MeterLimit } from '../../src/domain/quota-policy-schema';
import {
  billingPeriodWorkflow,
  billingState,
  changePlan,
  usageReported,
  workflowIdFor,
  type BillingPeriodActivities,
  type SubscriptionTerms,
} from '../../src/workflows/billing-period';
import { collectionWorkflowIdFor, type InvoiceCollectionActivities } from '../../src/workflows/invoice-collection';
import { workflowsPath } from '../../src/temporal/worker';
import { timeSkippingEnvironment } from '../support/temporal';
import { waitFor } from '../support/wait-for';
import { withIssueAndCharge } from '../../src/activities/issue-and-charge';

/*
 * The billing-period workflow on Temporal's time-skipping server, with activities that record
 * their calls (the activities' own I/O is tested against Postgres separately). Usage the test
 * "stores" goes into `stored`, which readUsageTotals sums as the counters would: the workflow
 * takes its usage from there, whatever the reports' deltas say.
 */
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
type ActivityName = keyof BillingPeriodActivities | keyof InvoiceCollectionActivities;
const calls: Array<{ name: ActivityName; input: Record<string, unknown> }> = [];
const stored: Array<{ meter: string; at: number; quantity: string }> = [];
/** The plan Postgres has in force per subscription, as enterPeriod answers it (applying scheduled changes). */
const inForce = new Map<
  string,
  { planCode: string; limits: MeterLimit[]; scheduled?: { at: number; planCode: string; limits: MeterLimit[] } }
>();
const steps: Omit<BillingPeriodActivities & InvoiceCollectionActivities, 'issueAndCharge'> = {
  notifyThreshold: async (input) => void calls.push({ name: 'notifyThreshold', input }),
  setEntitlement: async (input) => void calls.push({ name: 'setEntitlement', input }),
  publishQuota: async (input) => void calls.push({ name: 'publishQuota', input }),
  priceSpend: async () => assert.fail('no subscription of this test has a spend cap'),
  setSpendBlock: async () => assert.fail('no subscription of this test has a spend cap'),
  notifySpendThreshold: async () => assert.fail('no subscription of this test has a spend cap'),
  readUsageTotals: async (input) => {
    calls.push({ name: 'readUsageTotals', input });
    const [start, end] = [Date.parse(input.periodStart), Date.parse(input.periodEnd)];
    const totals: Record<string, string> = {};
    for (const { code } of input.meters) {
      const inPeriod = stored.filter((u) => u.meter === code && u.at >= start && u.at < end);
      totals[code] = inPeriod.reduce((sum, u) => sum.plus(u.quantity), new Decimal(0)).toFixed();
    }
    return totals;
  },
  draftInvoice: async (input) => {
    calls.push({ name: 'draftInvoice', input });
    return { invoiceId: `inv-${input.periodStart}` };
  },
  finalizeInvoice: async (input) => {
    calls.push({ name: 'finalizeInvoice', input });
    return { invoiceId: input.invoiceId, status: 'finalized', total: '10.00', currency: 'USD' };
  },
  priceOpenPeriod: async () => assert.fail('no spend thresholds in these tests'),
  draftInterimInvoice: async () => assert.fail('no spend thresholds in these tests'),
  // No credits in these tests: the collection's top-up check finds nothing to do.
  autoTopUpCredits: async () => ({ outcome: 'not_needed', balance: '0' }),
  chargeInvoice: async (input) => {
    calls.push({ name: 'chargeInvoice', input });
    return { outcome: 'paid' };
  },
  markPaymentFailed: async (input) => {
    calls.push({ name: 'markPaymentFailed', input });
    return { notificationId: 'n-1' };
  },
  deliverNotification: async (input) => void calls.push({ name: 'deliverNotification', input }),
  enterPeriod: async (input) => {
    calls.push({ name: 'enterPeriod', input });
    return inForce.get(input.subscriptionId)!;
  },
};
/** The close's one activity, run over the stubs above as the worker runs it over the real ones. */
const activities = withIssueAndCharge(steps);
const of = (name: ActivityName) => calls.filter((c) => c.name === name).map((c) => c.input);

before(async () => {
  [env, bundle] = await Promise.all([timeSkippingEnvironment(), bundleWorkflowCode({ workflowsPath })]);
});
after(async () => {
  await env?.teardown();
});
beforeEach(() => {
  calls.length = 0;
  stored.length = 0;
  inForce.clear();
});

const limits: MeterLimit[] = [
  {
    meter: 'api_calls',
    soft_thresholds: [{ percent: 50 }, { percent: 80 }, { percent: 100 }],
    hard_limit: '1000',
    grace_period: 'PT1H',
    at_hard_limit: 'block',
  },
];

async function withWorker<T>(taskQueue: string, fn: () => Promise<T>): Promise<T> {
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities });
  return worker.runUntil(fn());
}

const minuteNow = async () => new Date(Math.floor((await env.currentTimeMs()) / 60_000) * 60_000).toISOString();

describe('billing-period workflow', () => {
  test('the workflow bundle holds no pricing, invoicing or reconciliation code (a fix there cannot change what a history replays), and no zod', () => {
    const modules = [...new Set([...bundle.code.matchAll(/"\.\/((?:src|node_modules)\/[^"]+)"/g)].map((m) => m[1]!))];
    assert.ok(modules.includes('src/workflows/billing-period.ts'), `modules found: ${modules.join(', ')}`);
    // Every run instantiates each module it imports: zod's schemas cost more than the workflow's own code.
    assert.deepEqual(
      modules.filter((m) =>
        /^src\/domain\/(pricing\/|invoice|discounts|taxes|interim-billing|reconciliation\.ts|segment-pricing)|^node_modules\/zod\//.test(m),
      ),
      [],
    );
  });

  test('batched usage, thresholds once, grace then block, upgrade unblocks, late usage counted, close and continue-as-new', async () => {
    const taskQueue = 'billing-test-1';
    const now = await env.currentTimeMs();
    // A calendar month anchored on the 31st: periods end on the 30th/31st as months allow.
    const anchor = '2025-01-31T00:00:00.000Z';
    const period = periodContaining(new Date(anchor), { kind: 'calendar_month' }, now);
    const terms: SubscriptionTerms = {
      subscriptionId: 'sub-1',
      customer: 'acme',
      customerId: '00000000-0000-0000-0000-000000000001',
      planCode: 'starter',
      limits,
      anchor,
      interval: { kind: 'calendar_month' },
    };
    inForce.set('sub-1', { planCode: 'starter', limits });
    await withWorker(taskQueue, async () => {
      const handle = await env.client.workflow.start(billingPeriodWorkflow, {
        taskQueue,
        workflowId: workflowIdFor('acme'),
        args: [{ terms, allowedLatenessMs: 5 * 60_000, dunning: ['P1D'] }],
      });
      const signal = (seq: number, quantity: string, at: string) =>
        handle.signal(usageReported, { producer: 'api-1', seq, deltas: [{ meter: 'api_calls', at, quantity }] });
      /** Usage stored (counted), then reported as the API does. */
      const report = async (seq: number, quantity: string, at?: string) => {
        const time = at ?? (await minuteNow());
        stored.push({ meter: 'api_calls', at: Date.parse(time), quantity });
        await signal(seq, quantity, time);
      };

      // Queries are answered once the first workflow task, which reads and publishes, has completed.
      await waitFor(() => handle.query(billingState), { description: 'the workflow answers queries' });
      // At its start the run publishes each limited meter's state, with its first decision point.
      assert.deepEqual(
        of('publishQuota').map((p) => [p.usage, p.nextDecision]),
        [['0', '500']],
      );
      await report(1, '400');
      await report(2, '450');
      await signal(2, '450', await minuteNow()); // a replayed signal: ignored
      await signal(1, '999', await minuteNow()); // out of order: ignored
      const notified = (n: number) =>
        waitFor(() => of('notifyThreshold').length, { description: `${n} notify activities ran`, until: (ran) => ran >= n });
      let state = await waitFor(() => handle.query(billingState), {
        description: 'usage counted',
        until: (s) => s.meters.api_calls?.usage === '850',
      });
      await notified(2);
      assert.deepEqual(
        of('notifyThreshold').map((n) => n.threshold),
        ['50%', '80%'],
      );
      // The usage came from the totals (the counters), and the API learns the next decision point.
      assert.ok(of('readUsageTotals').length >= 2);
      const published = await waitFor(() => of('publishQuota').at(-1), {
        description: 'the state published',
        until: (p) => p?.usage === '850',
      });
      assert.equal(published!.nextDecision, '1000');

      await report(3, '150.5');
      state = await waitFor(() => handle.query(billingState), {
        description: 'the hard limit reached',
        until: (s) => s.meters.api_calls?.limit.status !== 'ok',
      });
      assert.equal(state.meters.api_calls!.limit.status, 'over_limit_in_grace');
      await notified(3);
      assert.deepEqual(
        of('notifyThreshold').map((n) => n.threshold),
        ['50%', '80%', '100%'],
      );
      assert.deepEqual(of('setEntitlement'), []);

      await env.sleep('61 minutes');
      state = await waitFor(() => handle.query(billingState), {
        description: 'the grace period over',
        until: (s) => s.meters.api_calls?.limit.status !== 'over_limit_in_grace',
      });
      assert.equal(state.meters.api_calls!.limit.status, 'blocked');
      // The state changes before the entitlement activity runs.
      await waitFor(() => of('setEntitlement').length, { description: 'the setEntitlement activity ran' });
      assert.deepEqual(
        of('setEntitlement').map((e) => e.blocked),
        [true],
      );

      inForce.set('sub-1', { planCode: 'growth', limits: [{ ...limits[0]!, hard_limit: '100000' }] });
      const upgraded = await handle.executeUpdate(changePlan, {
        args: [{ planCode: 'growth', limits: [{ ...limits[0]!, hard_limit: '100000' }] }],
      });
      assert.equal(upgraded.planCode, 'growth');
      assert.equal(upgraded.meters.api_calls!.limit.status, 'ok');
      assert.deepEqual(
        of('setEntitlement').map((e) => e.blocked),
        [true, false],
      );
      // Each threshold notified once per period, even after the limit moved.
      assert.deepEqual(
        of('notifyThreshold').map((n) => n.threshold),
        ['50%', '80%', '100%'],
      );

      // Past the period end, within the allowed lateness: usage from inside the period still counts in it.
      const untilEnd = period.end.getTime() - (await env.currentTimeMs());
      await env.sleep(untilEnd + 60_000);
      await report(4, '10', new Date(period.end.getTime() - 120_000).toISOString());
      await report(5, '7', new Date(period.end.getTime() + 60_000).toISOString()); // belongs to the next period
      state = await waitFor(() => handle.query(billingState), {
        description: 'late usage counted',
        until: (s) => s.meters.api_calls?.usage !== '1000.5',
      });
      assert.equal(state.meters.api_calls!.usage, '1010.5');
      assert.deepEqual(of('draftInvoice'), []);

      // The run ends in continue-as-new once the period is closed (waiting on it skips the lateness).
      await assert.rejects(
        env.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId, { followRuns: false }).result(),
        WorkflowContinuedAsNewError,
      );
      assert.deepEqual(of('draftInvoice'), [
        {
          subscriptionId: 'sub-1',
          customerId: terms.customerId,
          planCode: 'growth',
          periodStart: period.start.toISOString(),
          periodEnd: period.end.toISOString(),
        },
      ]);
      const invoiceId = `inv-${period.start.toISOString()}`;
      assert.deepEqual(of('finalizeInvoice'), [{ invoiceId }]);
      // The close made the first charge attempt itself; paid, no collection workflow was needed.
      assert.deepEqual(of('chargeInvoice'), [{ invoiceId, attempt: 1 }]);
      await assert.rejects(env.client.workflow.getHandle(collectionWorkflowIdFor(invoiceId)).describe(), WorkflowNotFoundError);
      // The next run: next period, early usage carried, thresholds reset, producer sequence kept.
      state = await waitFor(() => handle.query(billingState), {
        description: 'the next run answers queries',
        until: (s) => s.period.start !== period.start.toISOString(),
      });
      assert.equal(state.period.start, period.end.toISOString());
      assert.equal(state.planCode, 'growth');
      assert.deepEqual(of('enterPeriod'), [{ subscriptionId: 'sub-1', periodStart: period.end.toISOString() }]);
      assert.equal(state.meters.api_calls!.usage, '7');
      assert.deepEqual(state.meters.api_calls!.notified, []);
      await signal(5, '1000', await minuteNow()); // a sequence already seen before continue-as-new: still ignored
      await report(6, '1'); // processed after it: once this is counted, the one before has been handled
      state = await waitFor(() => handle.query(billingState), {
        description: 'the next report counted',
        until: (s) => s.meters.api_calls?.usage !== '7',
      });
      assert.equal(state.meters.api_calls!.usage, '8');
      const runs = await env.client.workflow.getHandle(workflowIdFor('acme')).describe();
      assert.notEqual(runs.runId, handle.firstExecutionRunId);

      // The recorded history of the first run replays without non-determinism against today's code.
      const history = await env.client.workflow.getHandle(workflowIdFor('acme'), handle.firstExecutionRunId).fetchHistory();
      const replays = [];
      for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, [{ workflowId: workflowIdFor('acme'), history }])) {
        replays.push(result);
      }
      assert.equal(replays.length, 1);
      assert.equal(replays[0]!.error, undefined, String(replays[0]!.error));
      // Without a worker its next timer would hold the shared time-skipping clock for the tests that follow.
      await handle.terminate('done');
    });
  });

  test('reports buffered while no worker runs are read once, in the one workflow task that takes them all', async () => {
    const taskQueue = 'billing-test-debounce';
    const terms: SubscriptionTerms = {
      subscriptionId: 'sub-2',
      customer: 'initech',
      customerId: '00000000-0000-0000-0000-000000000002',
      planCode: 'starter',
      limits,
      anchor: new Date(await env.currentTimeMs()).toISOString(),
      interval: { kind: 'calendar_month' },
    };
    // No sticky cache: the test server does not move a stopped worker's sticky tasks back to the queue.
    const worker = () =>
      Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities, maxCachedWorkflows: 0 });
    const first = await worker();
    const handle = await first.runUntil(async () => {
      const started = await env.client.workflow.start(billingPeriodWorkflow, {
        taskQueue,
        workflowId: workflowIdFor('initech'),
        args: [{ terms, allowedLatenessMs: 60_000, dunning: [] }],
      });
      await waitFor(() => started.query(billingState), { description: 'the first run read its totals' });
      return started;
    });
    const readsBefore = of('readUsageTotals').length;
    const at = terms.anchor;
    for (let seq = 1; seq <= 3; seq++) {
      stored.push({ meter: 'api_calls', at: Date.parse(at), quantity: '10' });
      await handle.signal(usageReported, { producer: 'api-1', seq, deltas: [{ meter: 'api_calls', at, quantity: '10' }] });
    }
    const second = await worker();
    await second.runUntil(async () => {
      const state = await waitFor(() => handle.query(billingState), {
        description: 'the three reports read',
        until: (s) => s.meters.api_calls?.usage === '30',
      });
      assert.equal(state.meters.api_calls!.usage, '30');
      assert.equal(of('readUsageTotals').length - readsBefore, 1, 'one read for three reports');
      await handle.terminate('done');
    });
  });
});
