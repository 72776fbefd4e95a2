import { Decimal } from './money';
import type { Proration } from './pricing/schema';

/*
 * Fixed amounts (base fee, minimum commitment) of a segment shorter than its billing period: a
 * plan change or a cancellation inside the period. The share is exact (a ratio of integer
 * milliseconds, far finer than the second) and the caller rounds the prorated line once, through
 * money.ts, like every other line.
 */

/**
 * What a segment [start, end) of the period bills of a fixed `amount`. Multiplied before it is
 * divided: amount × covered / length is then exact whenever it terminates, so a true tie is
 * rounded as a tie.
 */
export function prorateFixed(
  amount: Decimal,
  proration: Proration | undefined,
  segment: { start: number; end: number },
  period: { start: number; end: number },
): Decimal {
  const length = period.end - period.start;
  const covered = Math.min(segment.end, period.end) - Math.max(segment.start, period.start);
  if (!(length > 0) || !(covered > 0)) return new Decimal(0);
  if (covered >= length) return amount;
  switch (proration ?? 'prorated') {
    case 'prorated':
      return amount.times(covered).div(length);
    case 'full':
      return amount;
    case 'none':
      return new Decimal(0);
  }
}
