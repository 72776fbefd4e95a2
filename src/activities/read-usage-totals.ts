import { ApplicationFailure } from '@temporalio/activity';
import { z } from 'zod';
import type { Pool } from '../db/pool';
import { readUsageTotals } from '../metering/usage-totals';
import type { BillingPeriodActivities } from '../workflows/billing-period';

/**
 * The authoritative usage of the period for the billing workflow's quotas, from the real-time
 * counters (src/metering/usage-totals.ts). Read-only, so a retry is harmless; run as a local
 * activity, one per workflow task at most. Input no retry can mend (a run started by hand with a
 * customer id that is no UUID, say) fails for good instead of being retried forever.
 */
export function createReadUsageTotals(deps: { pool: Pool }): BillingPeriodActivities['readUsageTotals'] {
  return async ({ customerId, meters, periodStart, periodEnd }) => {
    const start = new Date(periodStart);
    const end = new Date(periodEnd);
    if (!z.uuid().safeParse(customerId).success)
      throw ApplicationFailure.nonRetryable(`customer id ${JSON.stringify(customerId)} is not a UUID`, 'invalid_input');
    if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()))
      throw ApplicationFailure.nonRetryable(
        `period ${JSON.stringify([periodStart, periodEnd])} is not a pair of timestamps`,
        'invalid_input',
      );
    return readUsageTotals(deps.pool, { customerId, meters: meters.map((m) => m.code), start, end });
  };
}
