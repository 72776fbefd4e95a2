import { ApplicationFailure } from '@temporalio/activity';
import type { Pool } from '../db/pool';
import { readUsageTotals } from '../metering/usage-totals';
import type { BillingPeriodActivities } from '../workflows/billing-period';

/**
 * The authoritative usage of the period for the billing workflow's quotas, from the real-time
 * counters (src/metering/usage-totals.ts). Read-only, so a retry is harmless; run as a local
 * activity, one per workflow task at most.
 */
export function createReadUsageTotals(deps: { pool: Pool }): BillingPeriodActivities['readUsageTotals'] {
  return async ({ customerId, meters, periodStart, periodEnd }) => {
    const start = new Date(periodStart);
    const end = new Date(periodEnd);
    if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()))
      throw ApplicationFailure.nonRetryable(
        `period ${JSON.stringify([periodStart, periodEnd])} is not a pair of timestamps`,
        'invalid_input',
      );
    return readUsageTotals(deps.pool, { customerId, meters: meters.map((m) => m.code), start, end });
  };
}
