import { Context } from '@temporalio/activity';

/**
 * Audit entries written by an activity name the workflow that decided the change; called
 * outside an activity (a script, a test calling the function directly) it is the system.
 */
export function workflowActor(): 'system' | `workflow:${string}` {
  let workflowId: string | undefined;
  try {
    workflowId = Context.current().info.workflowExecution?.workflowId;
  } catch {
    return 'system';
  }
  return workflowId ? `workflow:${workflowId}` : 'system';
}
