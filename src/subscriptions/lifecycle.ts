import type { Subscription } from './store';

/**
 * What must happen outside the database when a subscription starts or ends: in production, the
 * customer's billing workflow (id `billing/<customer external id>`) is started or told to close
 * with signal-with-start. Callers invoke it after the database commit; implementations must be
 * idempotent, so a request retried after a failure here converges instead of duplicating work.
 */
export interface SubscriptionLifecycle {
  started(subscription: Subscription): Promise<void>;
  canceled(subscription: Subscription): Promise<void>;
  /** The subscription moved to its new plan at once; its limits apply now (the invoice bills each side of the change on its own plan). */
  planChanged(subscription: Subscription): Promise<void>;
  /** The subscription now carries new spend thresholds; the open period is priced against them at once. */
  spendThresholdsChanged(subscription: Subscription): Promise<void>;
  /** The subscription carries its new spend cap (or none); it applies at once to the period in progress. */
  spendCapChanged(subscription: Subscription): Promise<void>;
}
