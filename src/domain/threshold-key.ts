import Decimal from 'decimal.js';

// A Decimal is exact as constructed (precision bounds arithmetic only): toFixed() gives it back normalized.

/**
 * How a threshold is named in the set of thresholds already notified, and to people: "80%" or
 * "1000" (decimal-normalized, so "1000.0" and "1000" are the same threshold). A percent threshold
 * keeps its name when a plan change moves the hard limit, so it still notifies once per period.
 */
export function thresholdKey(threshold: { percent: number } | { absolute: string }): string {
  return 'percent' in threshold ? `${new Decimal(threshold.percent).toFixed()}%` : new Decimal(threshold.absolute).toFixed();
}
