import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import {
  billingPeriodWorkflow,
  cancelSubscription,
  changePlan,
  changeSpendThresholds,
  changeSpendCap,
  subscriptionStarted,
  workflowIdFor,
  type SubscriptionTerms,
} from '../workflows/billing-period';
import type { SubscriptionLifecycle } from './lifecycle';
import type { Subscription } from './store';

export const termsOf = (s: Subscription): SubscriptionTerms => ({
  subscriptionId: s.id,
  customer: s.customer.externalId,
  customerId: s.customer.id,
  planCode: s.plan.id,
  limits: s.plan.limits,
  anchor: s.anchor.toISOString(),
  interval: s.plan.interval,
  spendThresholds: s.spendThresholds,
  spendCap: s.spendCap,
  ...(s.plan.settlement === 'credit_only' ? { creditOnly: true } : {}),
});

/**
 * Subscriptions drive the customer's billing workflow (one id per customer). Every call is
 * idempotent, as the lifecycle contract requires. Starting is signal-with-start: it starts the
 * workflow, or, while the previous subscription's run is still closing its final period, hands
 * the new terms to it so it continues as the new subscription once the final invoice is out.
 */
export interface BillingWorkflowOptions {
  client: Client;
  taskQueue: string;
  /** How long after a period end late events still count in it. */
  allowedLatenessMs: number;
  /** Waits between declined charge attempts (ISO 8601 durations). */
  dunning: string[];
  /** How often API processes report usage that is not near a decision point (USAGE_REPORT_INTERVAL_SECONDS). */
  usageReportIntervalMs: number;
}

export function temporalSubscriptionLifecycle(opts: BillingWorkflowOptions): SubscriptionLifecycle {
  const start = (subscription: Subscription) =>
    opts.client.workflow.signalWithStart(billingPeriodWorkflow, {
      workflowId: workflowIdFor(subscription.customer.externalId),
      taskQueue: opts.taskQueue,
      args: [
        {
          terms: termsOf(subscription),
          allowedLatenessMs: opts.allowedLatenessMs,
          dunning: opts.dunning,
          usageReportIntervalMs: opts.usageReportIntervalMs,
        },
      ],
      signal: subscriptionStarted,
      signalArgs: [termsOf(subscription)],
    });
  return {
    started: async (subscription) => {
      await start(subscription);
    },
    canceled: async (subscription) => {
      try {
        const at = (subscription.canceledAt ?? new Date()).toISOString();
        await opts.client.workflow.getHandle(workflowIdFor(subscription.customer.externalId)).signal(cancelSubscription, { at });
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    },
    planChanged: async (subscription) => {
      const handle = opts.client.workflow.getHandle(workflowIdFor(subscription.customer.externalId));
      const update = {
        planCode: subscription.plan.id,
        limits: subscription.plan.limits,
        creditOnly: subscription.plan.settlement === 'credit_only',
      };
      try {
        await handle.executeUpdate(changePlan, { args: [update] });
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        // No running workflow (it was never started, or was terminated): start one on the new plan.
        await start(subscription);
      }
    },
    spendThresholdsChanged: async (subscription) => {
      const handle = opts.client.workflow.getHandle(workflowIdFor(subscription.customer.externalId));
      try {
        await handle.executeUpdate(changeSpendThresholds, { args: [subscription.spendThresholds] });
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        await start(subscription);
      }
    },
    spendCapChanged: async (subscription) => {
      const handle = opts.client.workflow.getHandle(workflowIdFor(subscription.customer.externalId));
      try {
        await handle.executeUpdate(changeSpendCap, { args: [{ spendCap: subscription.spendCap }] });
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        // No running workflow: start one, which takes the cap from the subscription's terms.
        await start(subscription);
      }
    },
  };
}
