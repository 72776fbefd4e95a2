import { ApplicationFailure } from '@temporalio/activity';
import { CustomerService } from '../customers/service';
import type { Pool } from '../db/pool';
import type { SubscriptionLifecycle } from '../subscriptions/lifecycle';
import { SubscriptionService } from '../subscriptions/service';
import type { PlanChangeActivities } from '../workflows/billing-period';
import { nonRetryableFailure } from './refusal-failure';
import { workflowActor } from './workflow-actor';

/**
 * The workflow that asked applies the change itself, from this activity's result: telling it
 * again (an Update to the same workflow, which would record the change again) would be a loop.
 * Changing a plan runs no other lifecycle step.
 */
const appliedByTheWorkflow: SubscriptionLifecycle = {
  started: async () => undefined,
  canceled: async () => undefined,
  planChanged: async () => undefined,
  spendThresholdsChanged: async () => undefined,
  spendCapChanged: async () => undefined,
};

/**
 * A plan change asked of the billing workflow (the `changePlan` Update with `{plan, effective}`,
 * from the Temporal UI) recorded as the API records one: the same service, so the same rules
 * (direction, default timing, currency and interval checks), `subscription_changes` row and audit
 * entry, the actor being the workflow. `at`, the workflow's time when it took the Update, is the
 * change's "now": a retry converges on the change already made or scheduled. A refusal (unknown
 * plan, canceled subscription, …) fails the Update and records nothing.
 */
export function createRecordPlanChange(deps: { pool: Pool }): PlanChangeActivities['recordPlanChange'] {
  return async ({ subscriptionId, plan, effective, at }) => {
    const now = new Date(at);
    if (Number.isNaN(now.getTime())) throw ApplicationFailure.nonRetryable(`${JSON.stringify(at)} is not a timestamp`, 'invalid_input');
    const service = new SubscriptionService({
      pool: deps.pool,
      clock: { now: () => now },
      customers: new CustomerService(deps.pool),
      lifecycle: appliedByTheWorkflow,
    });
    const result = await service.changePlan(workflowActor(), subscriptionId, plan, effective);
    if (!result.ok) throw nonRetryableFailure(result);
    const { subscription, changed, direction, effectiveAt } = result.value;
    return {
      changed,
      direction,
      effectiveAt: effectiveAt.toISOString(),
      planCode: subscription.plan.id,
      limits: subscription.plan.limits,
      creditOnly: subscription.plan.settlement === 'credit_only',
      pendingChange: subscription.pendingChange
        ? { plan: subscription.pendingChange.toPlan, effectiveAt: subscription.pendingChange.effectiveAt.toISOString() }
        : null,
    };
  };
}
