import { InvalidDurationError, parseIsoDuration } from './iso-duration';
import type { BillingInterval } from './periods-schema';

/*
 * Billing periods: half-open [start, end) intervals in UTC, numbered from the subscription
 * anchor (period 0 starts at the anchor). Pure arithmetic over epoch milliseconds, free of Node
 * APIs and of the current time, so billing workflows can call it and stay deterministic on replay.
 */

export interface Period {
  /** Inclusive. */
  start: Date;
  /** Exclusive: the next period's start. */
  end: Date;
}

/** An instant as a Date or as epoch milliseconds. */
export type Instant = Date | number;

/** The period with the given index: 0 starts at the anchor, negative indices precede it. */
export function periodAt(anchor: Instant, interval: BillingInterval, index: number): Period {
  if (!Number.isSafeInteger(index)) throw new RangeError(`period index must be an integer, got ${index}`);
  const a = toMs(anchor, 'anchor');
  if (interval.kind === 'duration') {
    const length = positiveDuration(interval.iso);
    return period(a + index * length, a + (index + 1) * length);
  }
  return period(monthBoundary(a, index), monthBoundary(a, index + 1));
}

/**
 * The index of the period holding `instant`: the one whose start is at or before it and whose
 * end is after it. An instant exactly on a boundary belongs to the period that starts there.
 */
export function periodIndex(anchor: Instant, interval: BillingInterval, instant: Instant): number {
  const a = toMs(anchor, 'anchor');
  const t = toMs(instant, 'instant');
  if (interval.kind === 'duration') {
    const length = positiveDuration(interval.iso);
    // Float division can land one off near a boundary for far instants; integer products settle it.
    let index = Math.floor((t - a) / length);
    if (a + index * length > t) index -= 1;
    else if (a + (index + 1) * length <= t) index += 1;
    return index;
  }
  // The boundary in the instant's own month is either at or before the instant (its period)
  // or after it (the previous period): every period ends in the month after it starts.
  const anchorDate = new Date(a);
  const instantDate = new Date(t);
  const index = (instantDate.getUTCFullYear() - anchorDate.getUTCFullYear()) * 12 + (instantDate.getUTCMonth() - anchorDate.getUTCMonth());
  return monthBoundary(a, index) <= t ? index : index - 1;
}

export function periodContaining(anchor: Instant, interval: BillingInterval, instant: Instant): Period {
  return periodAt(anchor, interval, periodIndex(anchor, interval, instant));
}

/** The period right after `current`, which must be a period of this anchor and interval. */
export function nextPeriod(anchor: Instant, interval: BillingInterval, current: Period): Period {
  const index = periodIndex(anchor, interval, current.start);
  const expected = periodAt(anchor, interval, index);
  if (expected.start.getTime() !== current.start.getTime() || expected.end.getTime() !== current.end.getTime()) {
    throw new RangeError(
      `[${current.start.toISOString()}, ${current.end.toISOString()}) is not a period of this schedule; ` +
        `the one holding its start is [${expected.start.toISOString()}, ${expected.end.toISOString()})`,
    );
  }
  return periodAt(anchor, interval, index + 1);
}

export function periodContains(p: Period, instant: Instant): boolean {
  const t = toMs(instant, 'instant');
  return p.start.getTime() <= t && t < p.end.getTime();
}

/**
 * The start of monthly period `index`: the anchor's day of month clamped to that month's length,
 * at the anchor's time of day. Always derived from the anchor itself, never from the previous
 * boundary, so a Jan 31 anchor gives Feb 28, then Mar 31 again, not Mar 28.
 */
function monthBoundary(anchorMs: number, index: number): number {
  const anchor = new Date(anchorMs);
  const months = anchor.getUTCMonth() + index;
  const year = anchor.getUTCFullYear() + Math.floor(months / 12);
  const month = ((months % 12) + 12) % 12;
  const boundary = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not read years 0–99 as 1900–1999.
  boundary.setUTCFullYear(year, month, Math.min(anchor.getUTCDate(), daysInMonth(year, month)));
  boundary.setUTCHours(anchor.getUTCHours(), anchor.getUTCMinutes(), anchor.getUTCSeconds(), anchor.getUTCMilliseconds());
  return boundary.getTime();
}

function daysInMonth(year: number, month: number): number {
  if (month === 1) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month]!;
}

function positiveDuration(iso: string): number {
  const ms = parseIsoDuration(iso);
  if (ms === 0) throw new InvalidDurationError(iso, 'a billing interval must be longer than zero');
  return ms;
}

function toMs(instant: Instant, name: string): number {
  const ms = typeof instant === 'number' ? instant : instant.getTime();
  if (Number.isNaN(new Date(ms).getTime())) throw new RangeError(`${name} is not a valid instant`);
  return ms;
}

function period(startMs: number, endMs: number): Period {
  const start = new Date(startMs);
  const end = new Date(endMs);
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) throw new RangeError('period lies outside the range of a Date');
  return { start, end };
}
