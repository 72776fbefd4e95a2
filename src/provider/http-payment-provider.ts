import { z } from 'zod';
import {
  ProviderChargeSchema,
  ProviderRejectedError,
  ProviderUnavailableError,
  type ChargeFilter,
  type ChargeRequest,
  type PaymentProvider,
  type ProviderCharge,
} from './payment-provider';

export interface HttpPaymentProviderOptions {
  /** E.g. http://127.0.0.1:4010 (the simulator); paths are appended to it. */
  baseUrl: string;
  /** Per request, until the whole answer has arrived; past it the outcome is unknown. */
  timeoutMs: number;
  /**
   * Requests per second this process sends at most (0 or unset: no limit); a request waits for its
   * turn before it leaves. The wait happens inside the calling activity, so it is bounded by the
   * number of callers at once (the worker's activity slots) divided by this rate.
   */
  maxRequestsPerSecond?: number;
}

/** Spaces requests evenly at `perSecond`: each takes the next free turn and waits for it. */
function requestPacer(perSecond: number | undefined): () => Promise<void> {
  if (!perSecond) return () => Promise.resolve();
  const spacingMs = 1000 / perSecond;
  let nextTurn = 0;
  return () => {
    const now = Date.now();
    const turn = Math.max(now, nextTurn);
    nextTurn = turn + spacingMs;
    return turn > now ? new Promise((resolve) => setTimeout(resolve, turn - now)) : Promise.resolve();
  };
}

const ProblemSchema = z.object({ type: z.string().optional(), detail: z.string().optional() });
const ChargeListSchema = z.object({ data: z.array(ProviderChargeSchema) });

function describeFetchError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'TimeoutError') return 'no complete answer in time';
  const cause = err.cause;
  if (cause instanceof Error) return `${err.message} (${'code' in cause && typeof cause.code === 'string' ? cause.code : cause.message})`;
  return err.message;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The PaymentProvider over the provider's HTTP API. Whatever leaves the outcome unknown (no
 * answer in time, a lost connection, a 5xx, 408/429, an answer it cannot read) is a
 * ProviderUnavailableError: the request may have been executed, and only a retry under the same
 * idempotency key finds out without charging twice. Other 4xx are ProviderRejectedErrors.
 */
export function createHttpPaymentProvider({ baseUrl, timeoutMs, maxRequestsPerSecond }: HttpPaymentProviderOptions): PaymentProvider {
  const base = baseUrl.replace(/\/+$/, '');
  const awaitTurn = requestPacer(maxRequestsPerSecond);

  async function send(what: string, path: string, init: RequestInit): Promise<{ status: number; body: unknown }> {
    let status: number;
    let text: string;
    await awaitTurn();
    try {
      // The timeout also covers reading the body: a response cut off midway is just as unknown.
      const response = await fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(timeoutMs) });
      status = response.status;
      text = await response.text();
    } catch (err) {
      throw new ProviderUnavailableError(`${what}: ${describeFetchError(err)} (timeout ${timeoutMs} ms)`, { cause: err });
    }
    if (status >= 500 || status === 408 || status === 429) throw new ProviderUnavailableError(`${what}: HTTP ${status}`);
    const body = parseJson(text);
    if (status >= 400 && status !== 402) {
      const problem = ProblemSchema.safeParse(body);
      const code = problem.success ? problem.data.type?.split('/').pop() : undefined;
      const detail = problem.success ? problem.data.detail : undefined;
      throw new ProviderRejectedError(
        `${what} was rejected: HTTP ${status}${code ? ` ${code}` : ''}${detail ? `: ${detail}` : ''}`,
        status,
        code,
        detail,
      );
    }
    return { status, body };
  }

  /** An answer that is not what the API promises cannot tell what happened: treated as unknown. */
  function unreadable(what: string, status: number): ProviderUnavailableError {
    return new ProviderUnavailableError(`${what}: unexpected answer (HTTP ${status})`);
  }

  return {
    async charge(req: ChargeRequest): Promise<ProviderCharge> {
      const what = `charge ${req.idempotencyKey}`;
      const { idempotencyKey, ...params } = req;
      const { status, body } = await send(what, '/v1/charges', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
        body: JSON.stringify(params),
      });
      const charge = ProviderChargeSchema.safeParse(body);
      const expected = status === 402 ? 'declined' : status === 200 || status === 201 ? 'succeeded' : undefined;
      if (!charge.success || charge.data.status !== expected || charge.data.idempotencyKey !== idempotencyKey)
        throw unreadable(what, status);
      return charge.data;
    },

    async listCharges(filter: ChargeFilter): Promise<ProviderCharge[]> {
      const query = new URLSearchParams();
      if (filter.invoiceId !== undefined) query.set('invoiceId', filter.invoiceId);
      if (filter.customerId !== undefined) query.set('customerId', filter.customerId);
      const what = `list charges ${query.toString()}`;
      const { status, body } = await send(what, `/v1/charges?${query.toString()}`, { method: 'GET' });
      const list = ChargeListSchema.safeParse(body);
      if (status !== 200 || !list.success) throw unreadable(what, status);
      return list.data.data;
    },
  };
}
