import { z } from 'zod';

/*
 * The payment provider as the charge activity sees it: a Stripe-like API with idempotency keys.
 * Amounts are integer strings of minor units ("1999" = 19.99 USD), never JavaScript numbers.
 */

export interface ChargeRequest {
  /** The same key with the same parameters never charges twice; the provider returns the first result. */
  idempotencyKey: string;
  customerId: string;
  invoiceId: string;
  /** Integer string of minor units, > 0. */
  amountMinor: string;
  /** ISO 4217, upper case. */
  currency: string;
  description?: string;
}

export type ProviderChargeStatus = 'succeeded' | 'declined';

export interface ProviderCharge {
  id: string;
  idempotencyKey: string;
  customerId: string;
  invoiceId: string;
  amountMinor: string;
  currency: string;
  status: ProviderChargeStatus;
  declineCode?: string;
  /** ISO 8601, the provider's clock. */
  createdAt: string;
}

/** The wire form of a charge, checked wherever one is read back (HTTP answers, the simulator's state file). */
export const ProviderChargeSchema = z.object({
  id: z.string().min(1),
  idempotencyKey: z.string().min(1),
  customerId: z.string(),
  invoiceId: z.string(),
  amountMinor: z.string().regex(/^\d+$/),
  currency: z.string(),
  status: z.enum(['succeeded', 'declined']),
  declineCode: z.string().optional(),
  createdAt: z.string(),
}) satisfies z.ZodType<ProviderCharge>;

export interface ChargeFilter {
  invoiceId?: string;
  customerId?: string;
}

export interface PaymentProvider {
  /**
   * Resolves with the charge, succeeded or declined. Throws ProviderUnavailableError when the
   * outcome is unknown (timeout, 5xx, connection lost): the caller must retry with the SAME
   * idempotency key. Throws ProviderRejectedError (not retryable) for a 4xx such as an
   * idempotency key reused with other parameters.
   */
  charge(req: ChargeRequest): Promise<ProviderCharge>;
  /** The provider's own record, for reconciliation: every charge (any status) matching the filter, oldest first. */
  listCharges(filter: ChargeFilter): Promise<ProviderCharge[]>;
}

/** The outcome is unknown: the charge may or may not have happened. Retry with the same idempotency key. */
export class ProviderUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProviderUnavailableError';
  }
}

/** The provider refused the request as such (4xx); sending it again cannot succeed. */
export class ProviderRejectedError extends Error {
  constructor(
    message: string,
    /** The HTTP status, e.g. 400 or 409. */
    readonly status: number,
    /** The problem's code, the last segment of its `type` (e.g. `idempotency_key_reuse`), when the provider sent one. */
    readonly code?: string,
    /** The problem's `detail`, when the provider sent one. */
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'ProviderRejectedError';
  }
}
