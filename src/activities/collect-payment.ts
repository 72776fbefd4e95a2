import { ApplicationFailure } from '@temporalio/activity';
import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import { PaymentService } from '../payments/service';
import { ProviderRejectedError, type PaymentProvider } from '../provider/payment-provider';
import type { InvoiceCollectionActivities } from '../workflows/invoice-collection';
import { nonRetryableFailure } from './refusal-failure';
import { workflowActor } from './workflow-actor';

/**
 * Collection of one finalized invoice (PaymentService). An unknown provider outcome fails the
 * activity and Temporal retries the SAME attempt, with the SAME idempotency key; a charge the
 * provider rejects outright, or an invoice that cannot be charged, fails it for good.
 */
export function createCollectPayment(deps: {
  pool: Pool;
  clock: Clock;
  provider: PaymentProvider;
}): Omit<InvoiceCollectionActivities, 'deliverNotification' | 'autoTopUpCredits'> {
  const payments = new PaymentService(deps.pool, deps.clock, deps.provider);

  const chargeInvoice: InvoiceCollectionActivities['chargeInvoice'] = async ({ invoiceId, attempt }) => {
    let charged: Awaited<ReturnType<PaymentService['charge']>>;
    try {
      charged = await payments.charge(invoiceId, attempt, workflowActor());
    } catch (err) {
      if (err instanceof ProviderRejectedError) throw ApplicationFailure.nonRetryable(err.message, 'provider_rejected');
      throw err;
    }
    if (!charged.ok) throw nonRetryableFailure(charged);
    return charged.value;
  };

  /** After the last dunning attempt; returns the `payment_failed` notification to deliver. */
  const markPaymentFailed: InvoiceCollectionActivities['markPaymentFailed'] = async ({ invoiceId, attempts }) => {
    const failed = await payments.markFailed(invoiceId, attempts, workflowActor());
    if (!failed.ok) throw nonRetryableFailure(failed);
    return failed.value;
  };

  return { chargeInvoice, markPaymentFailed };
}
