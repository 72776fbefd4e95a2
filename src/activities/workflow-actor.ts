import { Context } from '@temporalio/activity';
import type { AuditActor } from '../db/audit';

/** Audit entries written by an activity name the workflow that decided the change. */
export const workflowActor = (): AuditActor => {
  const workflow = Context.current().info.workflowExecution;
  return workflow ? `workflow:${workflow.workflowId}` : 'system';
};
