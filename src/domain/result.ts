/**
 * What a use case answers instead of throwing: its value, or a refusal that says why in words
 * every adapter can render (the API as problem+json in src/api/refusal.ts, the CLI as a message
 * and exit status in src/cli/context.ts). Failures of the machinery itself (a lost connection, a
 * bug) stay exceptions.
 */
export type Result<T, Reason extends string = string> = Ok<T> | Refusal<Reason>;

export interface Ok<T> {
  ok: true;
  value: T;
}

/**
 * - `not_found`: what was named does not exist, or is not the caller's to see (a key restricted to
 *   one customer sees other customers' things as absent, never as forbidden);
 * - `conflict`: it exists and its state forbids the request;
 * - `invalid`: the request is understood but names something unusable (an unknown plan, another currency);
 * - `forbidden`: the caller may not do this, whatever the state;
 * - `unavailable`: the change is saved but a follow-up step failed; repeating the request converges.
 */
export type RefusalKind = 'not_found' | 'conflict' | 'invalid' | 'forbidden' | 'unavailable';

export interface Refusal<Reason extends string = string> {
  ok: false;
  kind: RefusalKind;
  /** Stable machine-readable cause, e.g. `unknown_plan`; the API exposes it as `reason`. */
  reason: Reason;
  /** One sentence for a person, ending with a full stop. */
  message: string;
  /** Extra facts for the caller (the API adds them to the problem body). */
  details?: Record<string, unknown>;
}

export const ok = <T>(value: T): Ok<T> => ({ ok: true, value });

export const refuse = <Reason extends string>(
  kind: RefusalKind,
  reason: Reason,
  message: string,
  details?: Record<string, unknown>,
): Refusal<Reason> => ({ ok: false, kind, reason, message, ...(details ? { details } : {}) });
