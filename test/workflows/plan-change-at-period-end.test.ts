import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { periodContaining } from '../../src/domain/periods';
import type { MeterLimit } from '../../src/domain/quota-policy-schema';
import { workflowsPath } from '../../src/temporal/worker';
import {
  billingPeriodWorkflow,
  billingState,
  workflowIdFor,
  type BillingPeriodActivities,
  type SubscriptionTerms,
} from '../../src/workflows/billing-period';
import type { InvoiceCollectionActivities } from '../../src/workflows/invoice-collection';
import { localEnvironment } from '../support/temporal';
import { waitFor } from '../support/wait-for';
import { withIssueAndCharge } from '../../src/activities/issue-and-charge';

/*
 * A downgrade scheduled for the period end, on a real dev server with 10-second periods: the
 * period closes (and is invoiced) on the old plan, and the run of the next period takes the plan
 * Postgres has in force from then on (enterPeriod, which applies the scheduled change), with its
 * limits, and its settlement (starter settles credit_only: the credit balance limits spend from the
 * new period on). The activities record their calls; enterPeriod answers as the store would.
 */
let env: TestWorkflowEnvironment;
const calls: Array<{ name: string; input: Record<string, unknown> }> = [];
const of = (name: string) => calls.filter((c) => c.name === name).map((c) => c.input);
const growth: MeterLimit[] = [{ meter: 'api_calls', soft_thresholds: [], hard_limit: '1000', at_hard_limit: 'block' }];
const starter: MeterLimit[] = [{ meter: 'api_calls', soft_thresholds: [], hard_limit: '100', at_hard_limit: 'block' }];
/** The change the service scheduled: starter from this instant on. */
let scheduledAt = Infinity;

const steps: Omit<BillingPeriodActivities & InvoiceCollectionActivities, 'issueAndCharge'> = {
  notifyThreshold: async () => undefined,
  setEntitlement: async () => undefined,
  publishQuota: async (input) => void calls.push({ name: 'publishQuota', input }),
  readUsageTotals: async () => ({ api_calls: '0' }),
  draftInvoice: async (input) => {
    calls.push({ name: 'draftInvoice', input });
    return { invoiceId: `inv-${input.periodStart}` };
  },
  finalizeInvoice: async ({ invoiceId }) => ({ invoiceId, status: 'finalized', total: '0.00', currency: 'USD' }),
  chargeInvoice: async () => ({ outcome: 'paid' }),
  markPaymentFailed: async () => ({ notificationId: 'n' }),
  deliverNotification: async () => undefined,
  autoTopUpCredits: async () => ({ outcome: 'not_needed', balance: '0' }),
  priceOpenPeriod: async () => assert.fail('no spend thresholds in this test'),
  draftInterimInvoice: async () => assert.fail('no spend thresholds in this test'),
  // Starter settles credit_only and the customer has no credit: its spend limit is reached at once.
  priceSpend: async (input) => {
    calls.push({ name: 'priceSpend', input });
    const none = { api_calls: '0' };
    return {
      currency: 'USD',
      meters: ['api_calls'],
      usage: none,
      spent: '0.00',
      available: '0',
      source: 'credits',
      runway: none,
      nextDecision: none,
    };
  },
  setSpendBlock: async (input) => void calls.push({ name: 'setSpendBlock', input }),
  notifySpendThreshold: async () => assert.fail('no soft thresholds in this test'),
  enterPeriod: async (input) => {
    calls.push({ name: 'enterPeriod', input });
    return Date.parse(input.periodStart) >= scheduledAt
      ? { planCode: 'starter', limits: starter, creditOnly: true }
      : { planCode: 'growth', limits: growth, creditOnly: false };
  },
};
/** The close's one activity, run over the stubs above as the worker runs it over the real ones. */
const activities = withIssueAndCharge(steps);

before(async () => {
  env = await localEnvironment();
});
after(async () => {
  await env?.teardown();
});

describe('billing-period workflow, a plan change scheduled for the period end', () => {
  test('the period closes on the old plan; the next run bills and limits on the new one', async () => {
    const taskQueue = 'billing-downgrade';
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowsPath, activities });
    // Anchored now, after the worker's bundle is built: the run starts in the period the anchor opens, whatever the build took.
    const anchor = new Date().toISOString();
    const interval = { kind: 'duration', iso: 'PT10S' } as const;
    const period = periodContaining(new Date(anchor), interval, Date.parse(anchor));
    scheduledAt = period.end.getTime();
    const terms: SubscriptionTerms = {
      subscriptionId: 'sub-downgrade',
      customer: 'hooli',
      customerId: '00000000-0000-0000-0000-000000000003',
      planCode: 'growth',
      limits: growth,
      anchor,
      interval,
    };
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(billingPeriodWorkflow, {
        taskQueue,
        workflowId: workflowIdFor('hooli'),
        args: [{ terms, allowedLatenessMs: 1000, dunning: [] }],
      });
      const first = await waitFor(() => handle.query(billingState), { description: 'the workflow answers queries' });
      assert.equal(first.planCode, 'growth');
      const next = await waitFor(() => handle.query(billingState), {
        description: 'the next period runs',
        until: (s) => s.period.start === period.end.toISOString(),
        timeout: 40_000,
      });
      assert.equal(next.planCode, 'starter');
      assert.deepEqual(
        of('draftInvoice').map((d) => [d.planCode, d.periodStart, d.periodEnd]),
        [['growth', period.start.toISOString(), period.end.toISOString()]],
      );
      assert.deepEqual(of('enterPeriod'), [{ subscriptionId: 'sub-downgrade', periodStart: period.end.toISOString() }]);
      // The next run publishes its quota with the new plan's hard limit.
      await waitFor(() => of('publishQuota').find((p) => p.hardLimit === '100'), { description: 'the smaller limit published' });
      // ...and, the new plan settling credit_only, prices the spend against the credit balance from its first read.
      const blocked = await waitFor(() => handle.query(billingState), {
        description: 'the credit_only spend limit applies',
        until: (s) => s.spend?.limit.status === 'blocked',
      });
      assert.equal(blocked.spend!.priced.source, 'credits');
      assert.deepEqual(
        of('priceSpend').map((p) => p.planCode),
        of('priceSpend').map(() => 'starter'),
        'never priced on growth, which settles credit_then_invoice',
      );
      assert.deepEqual(
        of('setSpendBlock').map((b) => b.blocked),
        [true],
      );
      await handle.terminate('done');
    });
  });
});
