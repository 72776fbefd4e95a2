import type { ZodError } from 'zod';

/*
 * What a failed parse of some input says, independent of the transport that reports it: the API
 * and the provider simulator both render it as a 400 problem with an RFC 9457 `errors` list.
 */

/** One offending field: a JSON Pointer to it and what is wrong with it. */
export interface ValidationIssue {
  pointer: string;
  detail: string;
}

/** JSON Pointer (RFC 6901) for a zod issue path, as used in RFC 9457's `errors` extension. */
export function jsonPointer(path: readonly PropertyKey[]): string {
  return '#' + path.map((p) => '/' + String(p).replaceAll('~', '~0').replaceAll('/', '~1')).join('');
}

/** Every offending field of a failed parse, in zod's order. */
export function validationIssues(error: ZodError): ValidationIssue[] {
  return error.issues.map((issue) => ({ pointer: jsonPointer(issue.path), detail: issue.message }));
}

/** One line naming the first issue and counting the rest; `where` names the input (body, query…) for an issue at its root. */
export function describeIssues(issues: readonly ValidationIssue[], where: string): string {
  const first = issues[0];
  const summary = first ? `${first.pointer === '#' ? where : first.pointer.slice(2)}: ${first.detail}` : 'invalid';
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return `Invalid ${where}: ${summary}${more}`;
}
