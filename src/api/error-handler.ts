import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ZodError } from 'zod';
import { isConnectionError } from '../db/connection-errors';
import { ProblemError, problemFromZod } from './problem';

/** Errors raised by Express's body parser: most carry a `type` naming what went wrong, all a 4xx status. */
function fromBodyParser(err: unknown): ProblemError | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  switch ((err as { type?: unknown }).type) {
    case 'entity.parse.failed':
      return new ProblemError('malformed_json', 'The request body could not be parsed as JSON.');
    case 'entity.too.large':
      return new ProblemError(
        'payload_too_large',
        `The request body exceeds ${String((err as { limit?: unknown }).limit ?? 'the limit')} bytes.`,
      );
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new ProblemError('unsupported_media_type', 'Unsupported body encoding or charset.');
    case 'request.aborted':
      return new ProblemError('validation_failed', 'The request was aborted before its body was complete.');
    default: {
      // Other read failures (a gzip body that does not inflate) are http-errors with a 4xx status.
      const { status, expose, message } = err as { status?: unknown; expose?: unknown; message?: unknown };
      if (expose !== true || typeof status !== 'number' || status < 400 || status > 499) return undefined;
      const code = status === 413 ? 'payload_too_large' : status === 415 ? 'unsupported_media_type' : 'validation_failed';
      return new ProblemError(code, `The request body could not be read: ${String(message)}.`);
    }
  }
}

/** Postgres unreachable (down, restarting, failing over): a transient 503, whichever route hit it. */
function fromDatabaseOutage(err: unknown): ProblemError | undefined {
  if (!isConnectionError(err)) return undefined;
  return new ProblemError('unavailable', 'The database is unreachable; retry shortly.', {}, { 'Retry-After': '1' });
}

/** The router could not percent-decode a path parameter (`/v1/customers/%E0%A4%A`). */
const badPathEncoding = (err: unknown): ProblemError | undefined =>
  err instanceof URIError && (err as { status?: unknown }).status === 400
    ? new ProblemError('validation_failed', 'Invalid params: a path segment is not valid percent-encoded UTF-8.')
    : undefined;

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new ProblemError('not_found', `No route for ${req.method} ${req.path}.`));
};

/**
 * How loudly an answer is logged, here and by the request logger (src/api/app.ts). A 503 is a
 * warning: a dependency away or the ingest queue full is expected to pass, and under overload an
 * error line per refused request would page for the designed answer. Other 5xx are errors, other
 * refusals warnings, successes debug (at ingest rates an info line per request drowns the rest).
 */
export function logLevelOf(status: number): 'debug' | 'warn' | 'error' {
  if (status === 503) return 'warn';
  if (status >= 500) return 'error';
  return status >= 400 ? 'warn' : 'debug';
}

/**
 * Renders every failure as RFC 9457 problem+json. Anything unexpected becomes a 500 that names
 * only the request id; the stack goes to the log, never to the client.
 */
export const problemHandler: ErrorRequestHandler = (err, req, res, next) => {
  if (res.headersSent) return next(err);
  const problem =
    err instanceof ProblemError
      ? err
      : err instanceof ZodError
        ? problemFromZod(err)
        : (fromBodyParser(err) ?? badPathEncoding(err) ?? fromDatabaseOutage(err));
  const instance = `urn:request:${String(req.id)}`;
  if (!problem) {
    req.log.error({ err }, 'unhandled error');
    const body = new ProblemError(
      'internal_error',
      `An internal error occurred; quote request id ${String(req.id)} when reporting it.`,
    ).toBody(instance);
    res.status(500).type('application/problem+json').json(body);
    return;
  }
  if (problem.status >= 500) req.log[logLevelOf(problem.status)]({ err }, problem.detail);
  // A 503 always says when to come back: every dependency outage is expected to pass.
  const headers = problem.status === 503 ? { 'Retry-After': '1', ...problem.headers } : problem.headers;
  res.status(problem.status).set(headers).type('application/problem+json').json(problem.toBody(instance));
};
