/** "Now" for activities and the API, injected so tests control time. Workflows use Temporal's clock. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
