import { nextPeriod, periodContaining, type Instant, type Period } from './periods';
import type { BillingInterval } from './periods-schema';

/*
 * When a subscription is billed: its periods are derived from its billing anchor (by default its
 * start, so it starts a period by construction), and billing begins at its start. A start between
 * two boundaries of the anchor's schedule (subscribed on the 17th, billed on the 1st) makes the
 * first billed period [start, next boundary): its billed part is cut at the start exactly as a
 * cancellation cuts the end of the last one, and its fixed fees are prorated against the whole
 * period. Pure, like periods.ts.
 */

export interface BillingSchedule {
  /** When billing begins: the subscription start. */
  start: Instant;
  /** Every period boundary is one of this anchor's boundaries. */
  billingAnchor: Instant;
  interval: BillingInterval;
}

const ms = (instant: Instant) => (typeof instant === 'number' ? instant : instant.getTime());

/** The period of the billing anchor's schedule holding `instant`, begun no earlier than the start. */
export function billedPeriodContaining(schedule: BillingSchedule, instant: Instant): Period {
  const full = periodContaining(schedule.billingAnchor, schedule.interval, instant);
  const start = ms(schedule.start);
  return start > full.start.getTime() && start < full.end.getTime() ? { start: new Date(start), end: full.end } : full;
}

/**
 * The billed period after `current`, which must be a period of the schedule or the first billed
 * one (cut at the start); with the start as the anchor this is exactly periods.ts' nextPeriod.
 */
export function nextBilledPeriod(schedule: BillingSchedule, current: Period): Period {
  const billed = billedPeriodContaining(schedule, current.start);
  const cutAtStart = billed.start.getTime() === current.start.getTime() && billed.end.getTime() === current.end.getTime();
  const scheduled = cutAtStart ? periodContaining(schedule.billingAnchor, schedule.interval, current.start) : current;
  return nextPeriod(schedule.billingAnchor, schedule.interval, scheduled);
}
