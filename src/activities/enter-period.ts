import { ApplicationFailure } from '@temporalio/activity';
import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import { applyDueChanges } from '../subscriptions/store';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import { workflowActor } from './workflow-actor';

/**
 * The billing workflow enters a period: a plan change scheduled for its start (a downgrade at the
 * period end) is put into force in Postgres, and the plan and limits then in effect (and whether
 * it settles credit_only) are returned for the run that bills the period. Idempotent
 * (applyDueChanges), so a retry is harmless.
 */
export function createEnterPeriod(deps: { pool: Pool; clock: Clock }): BillingPeriodActivities['enterPeriod'] {
  return async ({ subscriptionId, periodStart }) => {
    const at = new Date(periodStart);
    if (Number.isNaN(at.getTime()))
      throw ApplicationFailure.nonRetryable(`${JSON.stringify(periodStart)} is not a timestamp`, 'invalid_input');
    const subscription = await applyDueChanges(deps.pool, subscriptionId, at, deps.clock.now(), workflowActor());
    if (!subscription) throw ApplicationFailure.nonRetryable(`subscription ${subscriptionId} does not exist`, 'unknown_subscription');
    return { planCode: subscription.plan.id, limits: subscription.plan.limits, creditOnly: subscription.plan.settlement === 'credit_only' };
  };
}
