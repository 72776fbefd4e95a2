import type { ZodError, z } from 'zod';
import { describeIssues, validationIssues } from '../domain/validation-issues';

/**
 * The closed set of error kinds the API can return. Each has a stable `type` URI
 * (`/problems/<code>`) so clients can branch on it without parsing prose.
 */
export const problemCatalog = {
  validation_failed: { status: 400, title: 'The request is not valid' },
  malformed_json: { status: 400, title: 'The request body is not valid JSON' },
  unauthenticated: { status: 401, title: 'Missing or invalid API key' },
  spend_limit_reached: { status: 402, title: 'Spend limit reached' },
  forbidden: { status: 403, title: 'The API key may not do this' },
  not_found: { status: 404, title: 'No such resource' },
  method_not_allowed: { status: 405, title: 'Method not allowed on this resource' },
  not_acceptable: { status: 406, title: 'None of the accepted media types can be served' },
  conflict: { status: 409, title: 'The request conflicts with existing state' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported content type' },
  unprocessable: { status: 422, title: 'The request is understood but cannot be processed' },
  rate_limited: { status: 429, title: 'Too many requests' },
  quota_exceeded: { status: 429, title: 'Usage quota exceeded' },
  internal_error: { status: 500, title: 'Internal error' },
  unavailable: { status: 503, title: 'A dependency is unavailable' },
} as const;

export type ProblemCode = keyof typeof problemCatalog;

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  [extension: string]: unknown;
}

export const problemTypeUri = (code: ProblemCode): string => `/problems/${code}`;

/** The one error class for failures that should reach the client as problem+json. */
export class ProblemError extends Error {
  readonly status: number;

  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    readonly extensions: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.name = 'ProblemError';
    this.status = problemCatalog[code].status;
  }

  toBody(instance?: string): ProblemBody {
    // Extensions first: one named like an RFC 9457 member (a run's `status`) must not replace it.
    return {
      ...this.extensions,
      type: problemTypeUri(this.code),
      title: problemCatalog[this.code].title,
      status: this.status,
      detail: this.detail,
      ...(instance ? { instance } : {}),
    };
  }
}

/** The shared mapper from zod failures to a 400 problem naming every offending field. */
export function problemFromZod(error: ZodError, where: 'body' | 'query' | 'params' = 'body'): ProblemError {
  const errors = validationIssues(error);
  return new ProblemError('validation_failed', describeIssues(errors, where), { errors });
}

/** Validates one part of a request, or throws the 400 problem that names each invalid field. */
export function parseRequest<T extends z.ZodType>(schema: T, value: unknown, where: 'body' | 'query' | 'params'): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw problemFromZod(parsed.error, where);
  return parsed.data;
}
