import { ApplicationFailure } from '@temporalio/activity';
import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import { saveSpendBlock } from '../entitlements/quota-state-store';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import { workflowActor } from './workflow-actor';

/**
 * Records the billing workflow's decision that a customer's spend limit is reached past its grace
 * period (its charged meters refused with 402 by every API process, from memory), or no longer.
 * Idempotent: the same decision twice changes nothing and writes no second audit entry.
 */
export function createSetSpendBlock(deps: { pool: Pool; clock: Clock }): BillingPeriodActivities['setSpendBlock'] {
  return async ({ customerId, meters, blocked, periodEnd }) => {
    const resetsAt = new Date(periodEnd);
    if (Number.isNaN(resetsAt.getTime()))
      throw ApplicationFailure.nonRetryable(`periodEnd ${JSON.stringify(periodEnd)} is not a timestamp`, 'invalid_input');
    const known = await saveSpendBlock(deps.pool, { customerId, meters, blocked, resetsAt, now: deps.clock.now(), actor: workflowActor() });
    if (!known)
      throw ApplicationFailure.nonRetryable(
        `no customer ${customerId} or no meter among ${meters.join(', ')}`,
        'unknown_customer_or_meter',
      );
  };
}
