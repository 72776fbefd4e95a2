import type { Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { creditExpiryWorkflow, creditExpiryWorkflowIdFor } from '../workflows/credit-expiry';
import type { CreditExpiryTimers } from './expiry-timers';

/**
 * One `credit-expiry/<grant id>` workflow per expiring grant: it sleeps until the expiry and then
 * writes the expiry entry. The id is the grant's, so scheduling again finds it started.
 */
export function temporalCreditExpiryTimers(opts: { client: Client; taskQueue: string }): CreditExpiryTimers {
  return {
    schedule: async (grant) => {
      try {
        await opts.client.workflow.start(creditExpiryWorkflow, {
          workflowId: creditExpiryWorkflowIdFor(grant.id),
          taskQueue: opts.taskQueue,
          args: [{ grantId: grant.id, expiresAt: grant.expiresAt.toISOString() }],
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
        });
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
    },
  };
}
