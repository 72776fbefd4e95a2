import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { billingPeriodWorkflow, workflowIdFor, type BillingPeriodActivities } from '../../src/workflows/billing-period';
import type { InvoiceCollectionActivities } from '../../src/workflows/invoice-collection';
import { workflowsPath } from '../../src/temporal/worker';
import { localEnvironment } from '../support/temporal';
import { waitFor } from '../support/wait-for';
import { withIssueAndCharge } from '../../src/activities/issue-and-charge';

/*
 * A fresh billing workflow whose first workflow task runs only after its first period has ended
 * (no worker was up, or a backlog of thousands of period closes kept it waiting). The period it
 * bills is the one it was started in, which the server recorded; not the one the late task sees.
 * A real dev server in real time: the time-skipping server does not skip while a workflow task
 * waits for a worker.
 */
let env: TestWorkflowEnvironment;
const drafted: Array<{ periodStart: string; periodEnd: string }> = [];
const steps: Omit<BillingPeriodActivities & InvoiceCollectionActivities, 'issueAndCharge'> = {
  notifyThreshold: async () => undefined,
  setEntitlement: async () => undefined,
  publishQuota: async () => undefined,
  readUsageTotals: async () => ({}),
  priceOpenPeriod: async () => assert.fail('no spend thresholds in this test'),
  draftInterimInvoice: async () => assert.fail('no spend thresholds in this test'),
  draftInvoice: async ({ periodStart, periodEnd }) => {
    drafted.push({ periodStart, periodEnd });
    return { invoiceId: `invoice-${drafted.length}` };
  },
  finalizeInvoice: async ({ invoiceId }) => ({ invoiceId, status: 'finalized', total: '0.00', currency: 'USD' }),
  // As the payment service settles a zero invoice: without a charge.
  chargeInvoice: async () => ({ outcome: 'not_due' }),
  markPaymentFailed: async () => assert.fail('a zero invoice is not charged'),
  deliverNotification: async () => undefined,
  autoTopUpCredits: async () => ({ outcome: 'not_needed', balance: '0' }),
  enterPeriod: async () => ({ planCode: 'p', limits: [] }),
  priceSpend: async () => assert.fail('this subscription has no spend cap'),
  setSpendBlock: async () => assert.fail('this subscription has no spend cap'),
  notifySpendThreshold: async () => assert.fail('this subscription has no spend cap'),
};
/** The close's one activity, run over the stubs above as the worker runs it over the real ones. */
const activities = withIssueAndCharge(steps);

before(async () => {
  env = await localEnvironment();
});
after(async () => {
  await env?.teardown();
});

describe('billing-period workflow, first workflow task after the first period ended', () => {
  test('bills the period the run was started in, not the one its late first task falls in', async () => {
    const taskQueue = 'late-first-task';
    const anchor = new Date();
    const handle = await env.client.workflow.start(billingPeriodWorkflow, {
      taskQueue,
      workflowId: workflowIdFor('late-first-task'),
      args: [
        {
          terms: {
            subscriptionId: 'sub-late',
            customer: 'late-first-task',
            customerId: '00000000-0000-0000-0000-00000000000c',
            planCode: 'p',
            limits: [],
            anchor: anchor.toISOString(),
            interval: { kind: 'duration', iso: 'PT2S' },
          },
          allowedLatenessMs: 0,
          dunning: [],
          usageReportIntervalMs: 300_000,
        },
      ],
    });
    // No worker polls yet: the first period [anchor, anchor + 2 s) ends while the task waits.
    await sleep(3_000);
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowsPath, activities });
    await worker.runUntil(async () => {
      await waitFor(async () => drafted.length >= 1 || undefined, { description: 'the first invoice is drafted' });
      await handle.terminate('the first period is all this test needs');
    });
    assert.deepEqual(drafted[0], { periodStart: anchor.toISOString(), periodEnd: new Date(anchor.getTime() + 2_000).toISOString() });
  });
});
