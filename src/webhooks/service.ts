import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import { inTransaction } from '../db/transaction';
import { ok, refuse, type Refusal, type Result } from '../domain/result';
import { checkWebhookTarget, webhookTargetPolicy, type WebhookTargetPolicy } from '../domain/webhook-target-policy';
import type { CustomerService } from '../customers/service';
import { auditActorOf, customerNamed, seesCustomerId, type Actor } from '../keys/principal';
import { createEndpoint, disableEndpoint, findEndpoint, listEndpoints, type WebhookEndpoint } from './endpoint-store';
import { generateWebhookSecret } from './signature';

/*
 * Where notifications are sent (src/webhooks/delivery.ts). An endpoint belongs to one customer,
 * or is global (every customer's notifications) when created without one by an actor not
 * restricted to a customer. Its signing secret is returned once, at creation; endpoints are
 * disabled, never deleted, so the outbox keeps saying where notifications went. A URL pointing
 * inside the network (loopback, private, link-local, metadata, ...) is refused unless
 * allow-listed (src/domain/webhook-target-policy.ts); delivery checks it again, resolved.
 */

export interface WebhookEndpointInput {
  url: string;
  /** The owning customer's external id; null for every customer's; omitted: the actor's own customer, else none. */
  customer?: string | null;
}

export interface CreatedWebhookEndpoint {
  endpoint: WebhookEndpoint;
  /** Shown only now: it is never read back. */
  secret: string;
}

export type CreateRefusalReason = 'customer_restricted' | 'webhook_target_forbidden' | 'unknown_customer';

export interface WebhookEndpointServiceDeps {
  pool: Pool;
  clock: Clock;
  customers: CustomerService;
  /** Where endpoints may point; without it, public addresses only. */
  targets?: WebhookTargetPolicy;
}

/** Webhook endpoints as every adapter manages them; a key restricted to a customer sees only that customer's. */
export class WebhookEndpointService {
  private readonly pool: Pool;
  private readonly clock: Clock;
  private readonly customers: CustomerService;
  private readonly targets: WebhookTargetPolicy;

  constructor({ pool, clock, customers, targets = webhookTargetPolicy() }: WebhookEndpointServiceDeps) {
    this.pool = pool;
    this.clock = clock;
    this.customers = customers;
    this.targets = targets;
  }

  /** Registers the endpoint with a new signing secret. */
  async create(actor: Actor, input: WebhookEndpointInput): Promise<Result<CreatedWebhookEndpoint, CreateRefusalReason>> {
    if (input.customer === null && typeof actor !== 'string' && actor.customer) {
      return refuse(
        'forbidden',
        'customer_restricted',
        "A key restricted to a customer cannot register an endpoint for every customer's notifications.",
      );
    }
    const targetRefusal = this.refuseTarget(input.url);
    if (targetRefusal) return targetRefusal;
    const customerId = await this.ownerId(actor, input.customer);
    if (!customerId.ok) return customerId;
    const secret = generateWebhookSecret();
    const endpoint = await createEndpoint(this.pool, {
      url: input.url,
      customerId: customerId.value,
      secret,
      at: this.clock.now(),
      actor: auditActorOf(actor),
    });
    return ok({ endpoint, secret });
  }

  /** A page of endpoints in id order; a restricted key's own customer's only. */
  list(actor: Actor, page: { limit: number; after?: string }): Promise<WebhookEndpoint[]> {
    const customerId = typeof actor === 'string' ? undefined : actor.customer?.id;
    return listEndpoints(this.pool, { limit: page.limit, after: page.after, customerId });
  }

  async get(actor: Actor, id: string): Promise<Result<WebhookEndpoint, 'unknown_webhook_endpoint'>> {
    return visible(actor, await findEndpoint(this.pool, id), id);
  }

  /** Disables the endpoint so it receives nothing more; disabling it again changes nothing. */
  async disable(actor: Actor, id: string): Promise<Result<WebhookEndpoint, 'unknown_webhook_endpoint'>> {
    return inTransaction(this.pool, async (client) => {
      const current = visible(actor, await findEndpoint(client, id, true), id);
      if (!current.ok || current.value.disabledAt) return current;
      return ok(await disableEndpoint(client, current.value, this.clock.now(), auditActorOf(actor)));
    });
  }

  /** The refusal of a URL the webhook target policy does not allow, naming the rule. */
  private refuseTarget(url: string): Refusal<'webhook_target_forbidden'> | undefined {
    const verdict = checkWebhookTarget(url, this.targets);
    if (verdict.allowed) return undefined;
    return refuse('invalid', 'webhook_target_forbidden', `Webhook URL refused: ${verdict.detail}.`, {
      refusal: verdict.refusal,
      errors: [{ pointer: '#/url', detail: verdict.detail }],
    });
  }

  /** The internal id of the customer an endpoint is registered for: the named one, else the actor's own, else none. */
  private async ownerId(actor: Actor, requested: string | null | undefined): Promise<Result<string | null, 'unknown_customer'>> {
    const customer = requested === null ? undefined : customerNamed(actor, requested);
    if (customer === undefined) return ok(null);
    const found = await this.customers.get(actor, customer, 'reference');
    return found.ok ? ok(found.value.id) : found;
  }
}

/** Another customer's endpoint (or a global one) looks absent to a restricted key. */
function visible(actor: Actor, endpoint: WebhookEndpoint | undefined, id: string): Result<WebhookEndpoint, 'unknown_webhook_endpoint'> {
  if (!endpoint || !seesCustomerId(actor, endpoint.customerId)) {
    return refuse('not_found', 'unknown_webhook_endpoint', `No webhook endpoint ${id}.`);
  }
  return ok(endpoint);
}
