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
  /** The subscription now carries its new plan; its limits apply at once (no proration: the close prices the whole period on it). */
  planChanged(subscription: Subscription): Promise<void>;
  /** The subscription carries its new spend cap (or none); it applies at once to the period in progress. */
  spendCapChanged(subscription: Subscription): Promise<void>;
}
