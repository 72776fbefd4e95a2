import { ApplicationFailure } from '@temporalio/activity';
import type { Pool } from '../db/pool';
import { creditOnlyMoney, spendCapMoney, type AvailableMoney } from '../spend/available-money';
import { priceSpend } from '../spend/open-period';
import type { BillingPeriodActivities } from '../workflows/billing-period';

/**
 * Prices the open period for the billing workflow's spend limit (src/spend/open-period.ts). Reads
 * only, so a retry is harmless; run as a local activity after each read of the totals.
 */
export function createPriceSpend(deps: { pool: Pool }): BillingPeriodActivities['priceSpend'] {
  // What a period's usage may reach is the least these allow: the spend cap, and the credit
  // balance of a plan settling credit_only.
  const sources: readonly AvailableMoney[] = [spendCapMoney, creditOnlyMoney(deps.pool)];
  return async ({ customerId, planCode, spendCap, notified, periodStart, periodEnd }) => {
    const start = new Date(periodStart);
    const end = new Date(periodEnd);
    if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()))
      throw ApplicationFailure.nonRetryable(
        `period ${JSON.stringify([periodStart, periodEnd])} is not a pair of timestamps`,
        'invalid_input',
      );
    const spend = await priceSpend(deps.pool, { customerId, planCode, spendCap, notified, periodStart: start, periodEnd: end }, sources);
    if (!spend) throw ApplicationFailure.nonRetryable(`plan ${planCode} does not exist`, 'unknown_plan');
    return spend;
  };
}
