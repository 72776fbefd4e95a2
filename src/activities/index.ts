import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import { webhookTargetPolicy, type WebhookTargetPolicy } from '../domain/webhook-target-policy';
import type { InvoiceIssuer } from '../invoices/issuer';
import type { PaymentProvider } from '../provider/payment-provider';
import type { WorkerActivities } from '../workflows/activities';
import { createCollectPayment } from './collect-payment';
import { createDraftInterimInvoice } from './draft-interim-invoice';
import { createCreditActivities } from './credits';
import { createDraftInvoice } from './draft-invoice';
import { createEnterPeriod } from './enter-period';
import { createFinalizeInvoice } from './finalize-invoice';
import { withIssueAndCharge } from './issue-and-charge';
import { createNotifySpendThreshold } from './notify-spend-threshold';
import { createNotifyThreshold } from './notify-threshold';
import { createPriceOpenPeriod } from './price-open-period';
import { createPriceSpend } from './price-spend';
import { createReadUsageTotals } from './read-usage-totals';
import { createReconcileActivities } from './reconcile';
import { createRecordPlanChange } from './record-plan-change';
import { createDeliverNotification } from './webhook-delivery';
import { createPublishQuota, createSetEntitlement } from './set-entitlement';
import { createSetSpendBlock } from './set-spend-block';

export interface ActivityDeps {
  pool: Pool;
  clock: Clock;
  webhookTimeoutMs: number;
  /** Where webhooks may go; without it, public addresses only. */
  webhookTargets?: WebhookTargetPolicy;
  /** Earlier finalized invoices that late usage may still adjust. */
  lookbackInvoices: number;
  provider: PaymentProvider;
  /** Waits between declined charge attempts of the invoices reconciliation issues (DUNNING_SCHEDULE). */
  dunning: string[];
  /** Seller and number prefix of finalized invoices (SELLER_*, INVOICE_NUMBER_PREFIX); unset, the configuration's defaults. */
  issuer?: InvoiceIssuer;
}

/** Every activity the worker registers, built from its dependencies (tests hand in their own). */
export function createActivities(deps: ActivityDeps): WorkerActivities {
  const webhooks = {
    pool: deps.pool,
    clock: deps.clock,
    timeoutMs: deps.webhookTimeoutMs,
    targets: deps.webhookTargets ?? webhookTargetPolicy(),
  };
  const steps: Omit<WorkerActivities, 'issueAndCharge'> = {
    notifyThreshold: createNotifyThreshold(webhooks),
    notifySpendThreshold: createNotifySpendThreshold(webhooks),
    setEntitlement: createSetEntitlement({ pool: deps.pool, clock: deps.clock }),
    publishQuota: createPublishQuota({ pool: deps.pool }),
    readUsageTotals: createReadUsageTotals({ pool: deps.pool }),
    priceSpend: createPriceSpend({ pool: deps.pool }),
    setSpendBlock: createSetSpendBlock({ pool: deps.pool, clock: deps.clock }),
    draftInvoice: createDraftInvoice({ pool: deps.pool, clock: deps.clock, lookbackInvoices: deps.lookbackInvoices }),
    finalizeInvoice: createFinalizeInvoice({ pool: deps.pool, clock: deps.clock, ...(deps.issuer ? { issuer: deps.issuer } : {}) }),
    priceOpenPeriod: createPriceOpenPeriod({ pool: deps.pool }),
    draftInterimInvoice: createDraftInterimInvoice({ pool: deps.pool, clock: deps.clock }),
    enterPeriod: createEnterPeriod({ pool: deps.pool, clock: deps.clock }),
    recordPlanChange: createRecordPlanChange({ pool: deps.pool }),
    ...createCollectPayment({ pool: deps.pool, clock: deps.clock, provider: deps.provider }),
    ...createReconcileActivities({
      pool: deps.pool,
      clock: deps.clock,
      provider: deps.provider,
      lookbackInvoices: deps.lookbackInvoices,
      dunning: deps.dunning,
    }),
    deliverNotification: createDeliverNotification(webhooks),
    ...createCreditActivities({ pool: deps.pool, clock: deps.clock, provider: deps.provider }),
  };
  // The close's one activity runs the activities above in turn (src/activities/issue-and-charge.ts).
  return withIssueAndCharge(steps);
}
