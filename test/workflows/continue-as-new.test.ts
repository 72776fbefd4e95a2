import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { MeterLimit } from '../../src/domain/quota-policy-schema';
import {
  billingPeriodWorkflow,
  billingState,
  usageReported,
  workflowIdFor,
  type BillingPeriodActivities,
} from '../../src/workflows/billing-period';
import type { InvoiceCollectionActivities } from '../../src/workflows/invoice-collection';
import { workflowsPath } from '../../src/temporal/worker';
import { localEnvironment } from '../support/temporal';
import { waitFor } from '../support/wait-for';
import { withIssueAndCharge } from '../../src/activities/issue-and-charge';

/*
 * Mid-period continue-as-new, when Temporal suggests it: a real dev server told to suggest it
 * after 150 history events, and enough usage signals to get there. The next run must carry the
 * period, the usage, the thresholds already notified and the producers' sequences.
 */
let env: TestWorkflowEnvironment;
const notified: string[] = [];
/** The counters of this test: what readUsageTotals answers. */
let counted = 0;
const steps: Omit<BillingPeriodActivities & InvoiceCollectionActivities, 'issueAndCharge'> = {
  notifyThreshold: async ({ threshold }) => void notified.push(threshold),
  setEntitlement: async () => undefined,
  publishQuota: async () => undefined,
  priceSpend: async () => assert.fail('this subscription has no spend cap'),
  setSpendBlock: async () => assert.fail('this subscription has no spend cap'),
  notifySpendThreshold: async () => assert.fail('this subscription has no spend cap'),
  readUsageTotals: async () => ({ api_calls: String(counted) }),
  draftInvoice: async () => assert.fail('no period closes in this test'),
  finalizeInvoice: async () => assert.fail('no period closes in this test'),
  priceOpenPeriod: async () => assert.fail('no spend thresholds in this test'),
  draftInterimInvoice: async () => assert.fail('no spend thresholds in this test'),
  enterPeriod: async () => assert.fail('no period closes in this test'),
  chargeInvoice: async () => assert.fail('no period closes in this test'),
  autoTopUpCredits: async () => assert.fail('no period closes in this test'),
  markPaymentFailed: async () => assert.fail('no period closes in this test'),
  deliverNotification: async () => undefined,
};
/** The close's one activity, run over the stubs above as the worker runs it over the real ones. */
const activities = withIssueAndCharge(steps);

before(async () => {
  env = await localEnvironment(['--dynamic-config-value', 'limit.historyCount.suggestContinueAsNew=150']);
});
after(async () => {
  await env?.teardown();
});

const limits: MeterLimit[] = [
  { meter: 'api_calls', soft_thresholds: [{ percent: 10 }, { percent: 90 }], hard_limit: '1000', at_hard_limit: 'allow' },
];

describe('billing-period workflow, continue-as-new when suggested', () => {
  test('the next run carries the period, usage, notified thresholds and producer sequences', async () => {
    const taskQueue = 'can-suggested';
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowsPath, activities });
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(billingPeriodWorkflow, {
        taskQueue,
        workflowId: workflowIdFor('busy'),
        args: [
          {
            terms: {
              subscriptionId: 'sub-busy',
              customer: 'busy',
              customerId: '00000000-0000-0000-0000-00000000000b',
              planCode: 'p',
              limits,
              anchor: new Date().toISOString(),
              interval: { kind: 'calendar_month' },
            },
            allowedLatenessMs: 60_000,
            dunning: [],
          },
        ],
      });
      // Queries are answered once the first workflow task has completed.
      const first = await waitFor(() => handle.query(billingState), { description: 'the workflow answers queries' });
      const at = new Date().toISOString();
      const signal = (producer: string, seq: number, quantity: string) =>
        handle.signal(usageReported, { producer, seq, deltas: [{ meter: 'api_calls', at, quantity }] });
      /** Stored, then reported. */
      const report = (producer: string, seq: number, quantity: string) => {
        counted += Number(quantity);
        return signal(producer, seq, quantity);
      };
      // The 10% threshold is crossed, and notified, in the first run: far from the 150 events that suggest continue-as-new.
      await report('api-1', 1, '100');
      await waitFor(() => notified.length, { description: 'the notify activity ran' });
      // Then one unit per signal, from two producers; each signal adds a few history events.
      for (let seq = 2; seq <= 100; seq++) await report(`api-${seq % 2}`, seq, '1');
      await waitFor(async () => (await handle.describe()).runId, {
        description: 'the run continued as new',
        until: (runId) => runId !== handle.firstExecutionRunId,
      });

      // Replays of reports the first run already counted are ignored by the new run.
      await signal('api-0', 100, '500');
      await signal('api-1', 99, '500');
      await report('api-1', 101, '1');
      const state = await waitFor(() => handle.query(billingState), {
        description: 'all usage counted',
        until: (s) => s.meters.api_calls?.usage === '200',
      });
      assert.deepEqual(state.period, first.period);
      assert.deepEqual(state.meters.api_calls!.notified, ['10%']);
      assert.deepEqual(notified, ['10%'], 'the threshold crossed before continue-as-new is not notified again');
    });
  });
});
