import { ApplicationFailure } from '@temporalio/activity';
import type { Refusal } from '../domain/result';

/**
 * A service's refusal as the activity's failure: retrying cannot change the answer, so it is
 * non-retryable, typed by the refusal's reason and worded as a clause (lower case, no full stop).
 */
export function nonRetryableFailure(refusal: Refusal): ApplicationFailure {
  const clause = (refusal.message.charAt(0).toLowerCase() + refusal.message.slice(1)).replace(/\.$/, '');
  return ApplicationFailure.nonRetryable(clause, refusal.reason);
}
