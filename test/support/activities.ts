import { createActivities } from '../../src/activities';
import { systemClock } from '../../src/clock';
import type { Pool } from '../../src/db/pool';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import type { PaymentProvider } from '../../src/provider/payment-provider';

/**
 * The worker's activities as the worker composes them, on a test database: the system clock, no
 * dunning, webhooks given 1 s. `provider` is the payment provider simulator's URL (an HTTP provider
 * with a 2 s timeout, as the tests run it) or a provider already made.
 */
export function realActivities(pool: Pool, provider: string | PaymentProvider, lookbackInvoices = 3) {
  return createActivities({
    pool,
    clock: systemClock,
    webhookTimeoutMs: 1000,
    lookbackInvoices,
    dunning: [],
    provider: typeof provider === 'string' ? createHttpPaymentProvider({ baseUrl: provider, timeoutMs: 2000 }) : provider,
  });
}
