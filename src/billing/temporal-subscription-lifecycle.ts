import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { billingPeriodWorkflow, cancelSubscription, workflowIdFor, type SubscriptionTerms } from '../workflows/billing-period';
import type { SubscriptionLifecycle } from './subscription-lifecycle';
import type { Subscription } from './subscription-store';

export const termsOf = (s: Subscription): SubscriptionTerms => ({
  subscriptionId: s.id,
  customer: s.customer.externalId,
  customerId: s.customer.id,
  planCode: s.plan.id,
  limits: s.plan.limits,
  anchor: s.anchor.toISOString(),
  interval: s.plan.interval,
});

/**
 * Subscriptions drive the customer's billing workflow. Both calls are idempotent, as the
 * lifecycle contract requires: starting uses the deterministic workflow id with the
 * USE_EXISTING conflict policy, and a cancel for a workflow that has already ended is a no-op.
 */
export function temporalSubscriptionLifecycle(opts: { client: Client; taskQueue: string; allowedLatenessMs: number }): SubscriptionLifecycle {
  return {
    started: async (subscription) => {
      await opts.client.workflow.start(billingPeriodWorkflow, {
        workflowId: workflowIdFor(subscription.customer.externalId),
        taskQueue: opts.taskQueue,
        args: [{ terms: termsOf(subscription), allowedLatenessMs: opts.allowedLatenessMs }],
        workflowIdConflictPolicy: 'USE_EXISTING',
      });
    },
    canceled: async (subscription) => {
      try {
        await opts.client.workflow.getHandle(workflowIdFor(subscription.customer.externalId)).signal(cancelSubscription);
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    },
  };
}
