import { Decimal } from './money';

/** A quantity as a decimal string or a Decimal. */
type Quantity = string | Decimal;

/**
 * What one API process knows of a customer's meter when it decides whether its usage must reach
 * the billing workflow now or can wait for the next slow report.
 */
export interface MeterUsageEstimate {
  /**
   * What the workflow last published for the meter: its usage and its next decision point (the
   * usage at which it next notifies or blocks; null when nothing is left to decide). Absent when
   * it published nothing (a meter without limits, or not published yet): slow reports only.
   * `countedAtMs`: when it read the counters for that usage (epoch ms); absent when unknown.
   */
  published?: { usage: string; nextDecision: string | null; countedAtMs?: number };
  /** What this process reported for the meter since that publish. */
  sentSincePublish: Quantity;
  /** What this process stored for the meter and has not reported yet. */
  pending: Quantity;
  /**
   * How many API processes store usage (at least 1). Each holds only its share of what no read
   * has counted yet, so this one's reported-since and pending usage stand for each one's.
   */
  producers: number;
}

/**
 * A meter's report is urgent when the estimated usage reaches its next decision point less
 * `margin` (a fraction of it): the workflow must hear at once to notify or block as promptly as if
 * it had heard of every event. The estimate is the published usage plus this process's reported
 * since and pending usage times the number of producers: whatever the shares, the process holding
 * the largest one estimates at least the true usage, and its report's read counts everyone's.
 * Nothing pending, nothing urgent.
 */
export function isUrgent(meter: MeterUsageEstimate, margin: Quantity | number): boolean {
  const pending = new Decimal(meter.pending);
  if (!meter.published || meter.published.nextDecision === null || pending.lte(0)) return false;
  const unread = pending.plus(meter.sentSincePublish).times(Math.max(1, meter.producers));
  const estimate = new Decimal(meter.published.usage).plus(unread);
  const signalAt = new Decimal(meter.published.nextDecision).times(new Decimal(1).minus(margin));
  return estimate.gte(signalAt);
}

export type UsageReportKind = 'urgent' | 'slow';

/**
 * Whether a customer's pending usage is reported now, and why: urgent when any of its meters is,
 * slow once `intervalMs` have passed since `sinceMs` (its previous report from this process, or
 * its first usage since) or since the newest read of the counters published for these meters,
 * whichever is later; otherwise not yet (null). Nothing pending, nothing to report.
 *
 * Why a read restarts the clock: it counted what every API process had stored by then. So when
 * several processes hold usage of one customer, the first slow report's read covers the others'
 * older usage, and they wait a full interval from it instead of each sending its own: the
 * workflow hears about once per interval, not once per process. Reads are stamped by the
 * workflow's clock (Temporal's): one ahead of this process's by δ delays a slow report by δ.
 */
export function reportDue(input: {
  /** The customer's meters with usage stored and not reported yet. */
  meters: readonly MeterUsageEstimate[];
  margin: Quantity | number;
  nowMs: number;
  sinceMs: number;
  intervalMs: number;
}): UsageReportKind | null {
  if (input.meters.length === 0) return null;
  if (input.meters.some((meter) => isUrgent(meter, input.margin))) return 'urgent';
  const lastRead = Math.max(...input.meters.map((meter) => meter.published?.countedAtMs ?? -Infinity));
  return input.nowMs - Math.max(input.sinceMs, lastRead) >= input.intervalMs ? 'slow' : null;
}
