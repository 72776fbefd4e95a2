export interface EventTimePolicy {
  /** Events further than this in the future are rejected: the sender's clock is wrong. */
  maxFutureSkewMs: number;
  /** Events older than this when received are accepted but flagged late for the invoicing policy. */
  lateAfterMs: number;
}

export const defaultEventTimePolicy: EventTimePolicy = { maxFutureSkewMs: 5 * 60_000, lateAfterMs: 60 * 60_000 };

export type EventTiming = { status: 'on_time' | 'late' } | { status: 'future'; aheadMs: number };

export function classifyEventTime(eventTime: Date, receivedAt: Date, policy: EventTimePolicy): EventTiming {
  const aheadMs = eventTime.getTime() - receivedAt.getTime();
  if (aheadMs > policy.maxFutureSkewMs) return { status: 'future', aheadMs };
  return { status: -aheadMs > policy.lateAfterMs ? 'late' : 'on_time' };
}
