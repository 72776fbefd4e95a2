import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import {
  billingPeriodWorkflow,
  cancelSubscription,
  changePlan,
  changeSpendThresholds,
  changeSpendCap,
  subscriptionStarted,
  workflowIdFor,
  type BillingPeriodView,
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
  // Only when it differs from the start: the workflow input of every other subscription stays as it was.
  ...(s.billingAnchor.getTime() === s.anchor.getTime() ? {} : { billingAnchor: s.billingAnchor.toISOString() }),
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
  /**
   * Tells the running workflow of a change through an Update; with none running (never started,
   * or terminated) starts one, which takes every term from the subscription as it now is.
   */
  const updateOrStart = async <Arg>(subscription: Subscription, update: UpdateDefinition<BillingPeriodView, [Arg]>, arg: Arg) => {
    try {
      await opts.client.workflow.getHandle(workflowIdFor(subscription.customer.externalId)).executeUpdate(update, { args: [arg] });
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      await start(subscription);
    }
  };
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
    planChanged: (subscription) =>
      updateOrStart(subscription, changePlan, {
        planCode: subscription.plan.id,
        limits: subscription.plan.limits,
        creditOnly: subscription.plan.settlement === 'credit_only',
      }),
    spendThresholdsChanged: (subscription) => updateOrStart(subscription, changeSpendThresholds, subscription.spendThresholds),
    spendCapChanged: (subscription) => updateOrStart(subscription, changeSpendCap, { spendCap: subscription.spendCap }),
  };
}
