import http from 'node:http';
import https from 'node:https';
import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import { checkWebhookTarget, type WebhookTargetPolicy } from '../domain/webhook-target-policy';
import { signingEndpointsOf, type SigningEndpoint } from './endpoint-store';
import { recordAttempt, settleUnsent, type NotificationStatus, type StoredNotification } from './notification-store';
import { eventIdHeader, signatureHeader, signWebhook } from './signature';
import { guardedAgents, systemResolve, WebhookTargetRefused, type GuardedAgents, type Resolve } from './target';

/*
 * Delivery of one outbox notification to the webhook endpoints of its subscription's customer
 * and the global ones; shared by every kind of notification (thresholds, failed payments).
 *
 * The stored payload is sent, never one rebuilt from the activity input, so every attempt sends
 * the same event. Delivery is at least once: a receiver that answered 2xx may see the request
 * again when recording that answer failed, or when two executions of the activity overlap;
 * receivers deduplicate on Meterflow-Event-Id. No row lock is held across the HTTP call: a slow
 * endpoint must not pin a database connection.
 *
 * A round that leaves some endpoint without the notification says so in its outcome, and the
 * caller retries (the activities, through Temporal's retry policy). A 4xx other than 408 and 429
 * means the receiver rejects this request as such; sending it again cannot help, so the row is
 * marked failed and the outcome is not retryable.
 *
 * Targets are checked against the webhook target policy twice: the URL as written before
 * anything is sent, and each address its host resolves to as the connection is opened
 * (src/webhooks/target.ts). A refused target is recorded as a failed attempt naming the reason,
 * without a connection, and is not retried: the policy will refuse it again. Redirects are never
 * followed (Node's http client does not), so a 3xx cannot lead elsewhere.
 */

export interface WebhookDeliveryDeps {
  pool: Pool;
  clock: Clock;
  /** Where webhooks may go: public addresses, plus the allow-list (WEBHOOK_ALLOWED_TARGETS). */
  targets: WebhookTargetPolicy;
  /** Injected for tests that play DNS; the system resolver otherwise. */
  resolve?: Resolve;
  /**
   * Per request, from sending to the response status. Keep it well under the activity's
   * start-to-close timeout (1 minute) so a slow endpoint is recorded as a timeout by this code
   * rather than lost to an activity timeout.
   */
  timeoutMs: number;
}

/** How a delivery round ended: nothing left to send, or which endpoints have not accepted it and whether trying again can help. */
export type DeliveryOutcome = { settled: true } | { settled: false; message: string; retryable: boolean };

type Delivery = { endpointId: string; ok: true } | { endpointId: string; ok: false; error: string; retryable: boolean };

/** Delivers a stored notification to every endpoint that has not accepted it yet. */
export function createWebhookDelivery({
  pool,
  clock,
  targets,
  resolve = systemResolve,
  timeoutMs,
}: WebhookDeliveryDeps): (notification: StoredNotification) => Promise<DeliveryOutcome> {
  const agents = guardedAgents(targets, resolve);

  async function deliver(endpoint: SigningEndpoint, notificationId: string, body: string): Promise<Delivery> {
    const verdict = checkWebhookTarget(endpoint.url, targets);
    if (!verdict.allowed) return { endpointId: endpoint.id, ok: false, error: new WebhookTargetRefused(verdict).message, retryable: false };
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const headers = {
        'content-type': 'application/json',
        [signatureHeader]: signWebhook(endpoint.secret, body, clock.now()),
        [eventIdHeader]: notificationId,
      };
      const s = await post(new URL(endpoint.url), headers, body, agents, signal);
      if (s >= 200 && s < 300) return { endpointId: endpoint.id, ok: true };
      const error = s >= 300 && s < 400 ? `HTTP ${s} (redirects are not followed)` : `HTTP ${s}`;
      return { endpointId: endpoint.id, ok: false, error, retryable: !(s >= 400 && s < 500 && s !== 408 && s !== 429) };
    } catch (err) {
      if (err instanceof WebhookTargetRefused) return { endpointId: endpoint.id, ok: false, error: err.message, retryable: false };
      const error = signal.aborted ? `timed out after ${timeoutMs} ms` : `request failed: ${describeRequestError(err)}`;
      return { endpointId: endpoint.id, ok: false, error, retryable: true };
    }
  }

  return async function deliverNotification(notification: StoredNotification): Promise<DeliveryOutcome> {
    if (notification.status === 'delivered') return { settled: true };

    const endpoints = await signingEndpointsOf(pool, notification.subscriptionId);
    const pending = endpoints.filter((e) => !notification.deliveredEndpoints.includes(e.id));
    if (pending.length === 0) {
      // Every endpoint that still exists accepted it earlier (one that kept failing may have been
      // disabled since), or there was never anywhere to send it.
      await settleUnsent(pool, notification.id, notification.deliveredEndpoints.length > 0 ? 'delivered' : 'no_endpoint', clock.now());
      return { settled: true };
    }

    const body = JSON.stringify(notification.payload);
    const results = await Promise.all(pending.map((e) => deliver(e, notification.id, body)));
    const accepted = results.filter((r) => r.ok).map((r) => r.endpointId);
    const failures = results.filter((r): r is Extract<Delivery, { ok: false }> => !r.ok);
    const error = failures.length ? failures.map((f) => `endpoint ${f.endpointId}: ${f.error}`).join('; ') : null;
    const retryable = failures.some((f) => f.retryable);
    const status: NotificationStatus = failures.length === 0 ? 'delivered' : retryable ? 'pending' : 'failed';

    const recorded = await recordAttempt(pool, { id: notification.id, at: clock.now(), accepted, status, error });
    // Nothing recorded: an overlapping execution delivered it meanwhile, which is all we wanted.
    if (!recorded || !error) return { settled: true };
    return { settled: false, message: `notification ${notification.id} not delivered: ${error}`, retryable };
  };
}

/**
 * POSTs the body through the guarded agents and resolves with the response status once it
 * arrives. The response body is not used: the socket is closed at once.
 */
function post(url: URL, headers: Record<string, string>, body: string, agents: GuardedAgents, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const options = { method: 'POST', headers, signal };
    const request =
      url.protocol === 'https:'
        ? https.request(url, { ...options, agent: agents['https:'] }, respond)
        : http.request(url, { ...options, agent: agents['http:'] }, respond);
    function respond(response: http.IncomingMessage): void {
      response.destroy();
      resolve(response.statusCode ?? 0);
    }
    request.on('error', reject);
    request.end(body);
  });
}

/** Socket errors name what happened in their code (ECONNREFUSED, ENOTFOUND, ...). */
function describeRequestError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return 'code' in err && typeof err.code === 'string' && !err.message.includes(err.code) ? `${err.message} (${err.code})` : err.message;
}
