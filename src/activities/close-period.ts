import { ApplicationFailure } from '@temporalio/activity';
import { getPlan } from '../billing/plan-store';
import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import { getMeter } from '../metering/meter-store';
import { queryUsage } from '../metering/usage-query';
import type { BillingPeriodActivities } from '../workflows/billing-period';

/**
 * Closes a billing period: recomputes exact usage per charged meter from the stored events for
 * [start, end) and records it under (subscription, period start). Safe to run twice: the first
 * committed row wins and a retry returns without writing.
 */
export function createClosePeriod(deps: { pool: Pool; clock: Clock }): BillingPeriodActivities['closePeriod'] {
  return async (input) => {
    const plan = await getPlan(deps.pool, input.planCode);
    if (!plan) throw ApplicationFailure.nonRetryable(`plan ${input.planCode} does not exist`, 'unknown_plan');
    const from = new Date(input.periodStart);
    const to = new Date(input.periodEnd);
    const usage: Record<string, string> = {};
    for (const meterCode of new Set([...plan.charges.map((c) => c.meter), ...plan.limits.map((l) => l.meter)])) {
      const meter = await getMeter(deps.pool, meterCode);
      if (!meter) throw ApplicationFailure.nonRetryable(`meter ${meterCode} of plan ${plan.id} does not exist`, 'unknown_meter');
      usage[meterCode] = (await queryUsage(deps.pool, { customerId: input.customerId, meter, from, to })).value ?? '0';
    }
    await deps.pool.query(
      `insert into period_closes (subscription_id, period_start, period_end, customer_id, plan_code, usage, closed_at)
       values ($1, $2, $3, $4, $5, $6, $7) on conflict (subscription_id, period_start) do nothing`,
      [input.subscriptionId, from, to, input.customerId, plan.id, JSON.stringify(usage), deps.clock.now()],
    );
  };
}
