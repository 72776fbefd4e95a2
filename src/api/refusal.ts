import type { Refusal, Result } from '../domain/result';
import { ProblemError, type ProblemCode } from './problem';

const problemOfKind = {
  not_found: 'not_found',
  conflict: 'conflict',
  invalid: 'unprocessable',
  forbidden: 'forbidden',
  unavailable: 'unavailable',
} as const satisfies Record<Refusal['kind'], ProblemCode>;

/** The one mapping from a service's refusal to problem+json: its kind picks the status, its reason and details become extensions. */
export function problemFromRefusal(refusal: Refusal): ProblemError {
  return new ProblemError(problemOfKind[refusal.kind], refusal.message, { reason: refusal.reason, ...refusal.details });
}

/** The value of a service's result, or the problem the route answers with. */
export function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw problemFromRefusal(result);
  return result.value;
}
