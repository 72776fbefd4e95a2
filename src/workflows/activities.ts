import type { BillingPeriodActivities, PlanChangeActivities } from './billing-period';
import type { CreditExpiryActivities } from './credit-expiry';
import type { InvoiceCollectionActivities } from './invoice-collection';
import type { ReconciliationActivities } from './reconciliation';

/** Every activity the workflows call: what a worker must register, each under its name. */
export type WorkerActivities = BillingPeriodActivities &
  PlanChangeActivities &
  InvoiceCollectionActivities &
  ReconciliationActivities &
  CreditExpiryActivities;
