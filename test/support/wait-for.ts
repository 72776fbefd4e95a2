import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions<T> {
  /** What is awaited, for the failure message. */
  description: string;
  /** When `probe`'s answer is the awaited one; by default, when it is truthy. */
  until?: (value: T) => boolean;
  /** Generous on purpose: the suite must pass on a loaded machine; a healthy run returns long before. */
  timeout?: number;
  interval?: number;
}

/**
 * Polls `probe` until its answer is the awaited one and returns that answer. Signals, activities,
 * timers and NOTIFY are asynchronous by design: tests wait for what they assert, never for a fixed time.
 * A probe that throws has not answered yet (a workflow queried before its first task completes
 * is "not ready"); at the deadline the failure names the last error.
 */
export async function waitFor<T>(probe: () => T | Promise<T>, options: WaitOptions<T> & { until: (value: T) => boolean }): Promise<T>;
export async function waitFor<T>(probe: () => T | Promise<T>, options: Omit<WaitOptions<T>, 'until'>): Promise<NonNullable<T>>;
export async function waitFor<T>(probe: () => T | Promise<T>, options: WaitOptions<T>): Promise<T> {
  const { description, until = Boolean, timeout = 30_000, interval = 25 } = options;
  const deadline = performance.now() + timeout;
  for (;;) {
    let last: string;
    try {
      const value = await probe();
      if (until(value)) return value;
      last = `still ${JSON.stringify(value)}`;
    } catch (err) {
      last = `failing with ${String(err)}`;
    }
    if (performance.now() > deadline) assert.fail(`${description}: ${last} after ${timeout} ms`);
    await sleep(interval);
  }
}
