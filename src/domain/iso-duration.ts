import { quote } from './input-checks';

/*
 * Fixed ISO 8601 durations (billing intervals, grace periods, dunning waits): parsed to
 * milliseconds without Node APIs or a schema library, so workflows can use them.
 */

export class InvalidDurationError extends Error {
  constructor(
    readonly input: string,
    reason: string,
  ) {
    super(`${quote(input)} is not a supported ISO 8601 duration: ${reason}`);
    this.name = 'InvalidDurationError';
  }
}

/** Milliseconds per unit, in the order of the capture groups below. */
const UNIT_MS = [7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000] as const;
const DURATION = /^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;
/** A sanity cap, about 274 years: no real interval or grace period is longer, and the sum stays a safe integer. */
const MAX_DURATION_MS = 100_000 * 86_400_000;

/**
 * The length of a fixed ISO 8601 duration in milliseconds: weeks, days, hours, minutes and
 * seconds, in whole numbers (`PT5M`, `P1DT12H`, `P2W`). A day is 24 hours: periods are in UTC,
 * where no day is longer or shorter. Years and months are refused because their length varies;
 * monthly billing is the `calendar_month` interval. `PT0S` is valid (a zero grace period).
 */
export function parseIsoDuration(iso: string): number {
  const match = DURATION.exec(iso);
  if (!match) {
    const reason = /^P[^T]*[YM]/.test(iso)
      ? 'years and months have no fixed length; use the calendar_month interval for monthly periods'
      : 'expected P[nW][nD][T[nH][nM][nS]] with whole numbers and upper-case designators, e.g. PT5M or P1DT12H';
    throw new InvalidDurationError(iso, reason);
  }
  const parts = match.slice(1);
  if (parts.every((part) => part === undefined) || iso.endsWith('T')) {
    throw new InvalidDurationError(iso, 'it names no amount after P or T; write PT0S for zero');
  }
  const ms = parts.reduce((sum, part, i) => sum + Number(part ?? 0) * UNIT_MS[i]!, 0);
  if (ms > MAX_DURATION_MS) throw new InvalidDurationError(iso, 'it is longer than 100,000 days');
  return ms;
}
