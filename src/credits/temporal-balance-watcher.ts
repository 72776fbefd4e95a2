import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { creditsChanged, workflowIdFor } from '../workflows/billing-period';
import type { CreditBalanceWatcher } from './balance-watcher';

/** Signals the customer's billing workflow; a customer without one (no subscription) has nothing to re-price. */
export function temporalCreditBalanceWatcher(client: Client): CreditBalanceWatcher {
  return {
    grew: async (customer) => {
      try {
        await client.workflow.getHandle(workflowIdFor(customer.externalId)).signal(creditsChanged);
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    },
  };
}
