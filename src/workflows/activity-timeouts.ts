/**
 * The activities' startToClose and heartbeat timeouts, named so the worker's shutdown grace (config
 * WORKER_SHUTDOWN_GRACE_SECONDS, compose stop_grace_period, Kubernetes terminationGracePeriodSeconds)
 * and the tests that check it are derived from the figures the workflows really use. Milliseconds:
 * a workflow proxy takes a number as it takes '1 minute', and schedules the same command.
 */
const MINUTE = 60_000;

/** Every other activity: one transaction or one provider request, bounded well inside it. */
export const ACTIVITY_START_TO_CLOSE_MS = 1 * MINUTE;

/** The close (issueAndCharge): draft, finalize, top-up and first charge, each once a 1-minute activity. */
export const CLOSE_START_TO_CLOSE_MS = 5 * MINUTE;
export const CLOSE_HEARTBEAT_MS = 1 * MINUTE;

/** Reconciliation reads the provider for every invoice of a month; it heartbeats as it goes. */
export const RECONCILE_START_TO_CLOSE_MS = 30 * MINUTE;
export const RECONCILE_HEARTBEAT_MS = 2 * MINUTE;

/**
 * How long a stopping worker lets in-flight activities run before it cancels them: the longest
 * startToClose among those that must drain, so a period close in flight finishes instead of being
 * cancelled and charged again from the start by another worker. reconcilePeriod is left out on
 * purpose: it heartbeats every 10 s and is idempotent (its findings are replaced, not appended), so
 * cancelling it costs a recompute on another worker after at most its heartbeat timeout, whereas
 * draining it could hold a rollout for half an hour.
 */
export const DRAINED_START_TO_CLOSE_MS = Math.max(ACTIVITY_START_TO_CLOSE_MS, CLOSE_START_TO_CLOSE_MS);
