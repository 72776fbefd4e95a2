import { Context } from '@temporalio/activity';
import type { AuditActor } from '../db/audit';

/**
 * Audit entries written by an activity name the workflow that decided the change; called
 * outside an activity (a script, a test calling the function directly) it is the system.
 */
export function workflowActor(): AuditActor {
  let workflowId: string | undefined;
  try {
    workflowId = Context.current().info.workflowExecution?.workflowId;
  } catch {
    return 'system';
  }
  return workflowId ? `workflow:${workflowId}` : 'system';
}
