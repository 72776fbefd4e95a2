import { ApplicationFailure } from '@temporalio/activity';
import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import { saveBlockDecision, saveQuotaState } from '../entitlements/quota-state-store';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import { workflowActor } from './workflow-actor';

export type SetEntitlementInput = Parameters<BillingPeriodActivities['setEntitlement']>[0];

/** Neither retrying nor waiting makes an unknown customer or meter exist. */
const unknownCustomerOrMeter = (customerId: string, meter: string) =>
  ApplicationFailure.nonRetryable(`no customer ${customerId} or no meter "${meter}"`, 'unknown_customer_or_meter');

/**
 * Records the billing workflow's decision that a customer may (not) use a meter, for every API
 * process to enforce from memory. Idempotent: a retry, or the same decision twice, changes
 * nothing and writes no second audit entry.
 */
export function createSetEntitlement(deps: { pool: Pool; clock: Clock }): BillingPeriodActivities['setEntitlement'] {
  return async ({ customerId, meter, blocked, periodEnd }) => {
    const resetsAt = new Date(periodEnd);
    if (Number.isNaN(resetsAt.getTime()))
      throw ApplicationFailure.nonRetryable(`periodEnd ${JSON.stringify(periodEnd)} is not a timestamp`, 'invalid_input');
    const known = await saveBlockDecision(deps.pool, {
      customerId,
      meter,
      blocked,
      resetsAt,
      now: deps.clock.now(),
      actor: workflowActor(),
    });
    if (!known) throw unknownCustomerOrMeter(customerId, meter);
  };
}

/**
 * Publishes a limited meter's state after the workflow evaluated it, for quota checks to answer
 * from memory. Not an access change, so no audit entry: blocks are audited above. A retry, or a
 * publish overtaken by a later one, changes nothing.
 */
export function createPublishQuota(deps: { pool: Pool }): BillingPeriodActivities['publishQuota'] {
  return async ({ customerId, meter, usage, hardLimit, state, notified, nextDecision, spendRunway, periodEnd, asOf, countedAt }) => {
    const known = await saveQuotaState(deps.pool, {
      customerId,
      meter,
      usage,
      hardLimit,
      state,
      notified,
      // Histories recorded before decision points schedule publishes without one.
      nextDecision: nextDecision ?? null,
      spendRunway: spendRunway ?? null,
      periodEnd: new Date(periodEnd),
      asOf: new Date(asOf),
      // Runs recorded before it do not say.
      countedAt: countedAt ? new Date(countedAt) : null,
    });
    if (!known) throw unknownCustomerOrMeter(customerId, meter);
  };
}
