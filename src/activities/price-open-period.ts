import { ApplicationFailure } from '@temporalio/activity';
import type { Pool } from '../db/pool';
import { PricingError } from '../domain/pricing/price-plan';
import { SpendThresholdsSchema } from '../domain/spend-thresholds-schema';
import { InvoiceInputError } from '../invoices/builder';
import { priceOpenPeriod } from '../invoices/progressive';
import type { BillingPeriodActivities } from '../workflows/billing-period';

/**
 * Progressive billing: prices the open period so far from the raw events, as an interim invoice
 * would, and saves nothing, so a retry is harmless. Data no retry can fix fails it for good.
 */
export function createPriceOpenPeriod(deps: { pool: Pool }): BillingPeriodActivities['priceOpenPeriod'] {
  return async (input) => {
    const periodStart = new Date(input.periodStart);
    const periodEnd = new Date(input.until);
    const thresholds = SpendThresholdsSchema.safeParse(input.thresholds);
    if (Number.isNaN(periodStart.getTime()) || Number.isNaN(periodEnd.getTime()) || !thresholds.success)
      throw ApplicationFailure.nonRetryable(`priceOpenPeriod: invalid input ${JSON.stringify(input)}`, 'invalid_input');
    try {
      return await priceOpenPeriod(
        deps.pool,
        { subscriptionId: input.subscriptionId, customerId: input.customerId, planCode: input.planCode, periodStart, periodEnd },
        thresholds.data,
      );
    } catch (err) {
      if (err instanceof InvoiceInputError || err instanceof PricingError) throw ApplicationFailure.nonRetryable(err.message, err.name);
      throw err;
    }
  };
}
