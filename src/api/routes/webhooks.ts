import { Router, type Response } from 'express';
import { z } from 'zod';
import { generateWebhookSecret } from '../../activities/webhook-signature';
import type { Clock } from '../../clock';
import { recordAudit, type AuditActor } from '../../db/audit';
import { HttpUrlSchema, Identifier } from '../../domain/edge-schemas';
import type { Pool } from '../../db/pool';
import { checkWebhookTarget, webhookTargetPolicy, type WebhookTargetPolicy } from '../../domain/webhook-target-policy';
import { findCustomerId } from '../../keys/store';
import { inTransaction, type Queryable } from '../../db/transaction';
import { accessOf, authorize, type Access } from '../authorization';
import { apiKeyAuth, jsonContent, problemResponses, registry } from '../openapi';
import { page, pageSchema, PageQuerySchema } from '../pagination';
import { ProblemError, parseRequest } from '../problem';

/*
 * Where soft-limit notifications are sent (src/activities/notify-threshold.ts). An endpoint
 * belongs to one customer, or is global (every customer's notifications) when created without
 * one by a key not restricted to a customer. Its signing secret is returned once, at creation;
 * endpoints are disabled, never deleted, so the outbox keeps saying where notifications went.
 * A URL pointing inside the network (loopback, private, link-local, metadata, ...) is refused
 * unless allow-listed (src/domain/webhook-target-policy.ts); delivery checks it again, resolved.
 */

const EndpointInputSchema = z
  .strictObject({
    url: HttpUrlSchema.meta({ example: 'https://example.com/hooks/meterflow' }),
    customer: Identifier.nullable().optional().meta({
      description:
        "External id of the customer whose notifications go here; null for every customer's. Omitted: the key's own customer, or null for an unrestricted key",
    }),
  })
  .meta({ id: 'WebhookEndpointInput' });

const EndpointSchema = z
  .object({
    id: z.uuid(),
    url: z.string(),
    customer: z.string().nullable().meta({ description: "null: a global endpoint, receiving every customer's notifications" }),
    status: z.enum(['active', 'disabled']),
    created_at: z.string(),
    disabled_at: z.string().nullable(),
  })
  .meta({ id: 'WebhookEndpoint' });

const CreatedEndpointSchema = EndpointSchema.extend({
  secret: z.string().meta({
    description:
      'The signing secret. Shown only in this response: store it now. Verify each request\'s `Meterflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` and reject old timestamps; deduplicate on `Meterflow-Event-Id`.',
    example: 'whsec_…',
  }),
}).meta({ id: 'CreatedWebhookEndpoint' });

const IdParams = z.object({ id: z.uuid() });

const security = [{ [apiKeyAuth.name]: [] }];
const tags = ['webhooks'];
const adminOnly = "Requires `billing:admin`. A key restricted to a customer sees and manages only that customer's endpoints.";

registry.registerPath({
  method: 'post',
  path: '/v1/webhook-endpoints',
  summary: 'Register a webhook endpoint; its signing secret is in this response only',
  description: `${adminOnly} Notifications are POSTed as JSON, signed, and retried until the endpoint answers 2xx (a 4xx other than 408 and 429 stops the retries); redirects are not followed. The URL must point to a public address: loopback, private, link-local, CGNAT, multicast, reserved and cloud metadata addresses, localhost, single-label and .local/.internal names and URLs with credentials are refused with 422 \`webhook_target_forbidden\` unless the server's WEBHOOK_ALLOWED_TARGETS lists them. The host is resolved and checked again at each delivery.`,
  tags,
  security,
  request: { body: jsonContent(EndpointInputSchema) },
  responses: { 201: { description: 'Created', ...jsonContent(CreatedEndpointSchema) }, ...problemResponses(400, 401, 403, 422, 429) },
});
registry.registerPath({
  method: 'get',
  path: '/v1/webhook-endpoints',
  summary: 'List webhook endpoints (never their secrets)',
  description: adminOnly,
  tags,
  security,
  request: { query: PageQuerySchema },
  responses: {
    200: { description: 'A page of endpoints', ...jsonContent(pageSchema(EndpointSchema)) },
    ...problemResponses(400, 401, 403, 429),
  },
});
registry.registerPath({
  method: 'get',
  path: '/v1/webhook-endpoints/{id}',
  summary: 'Get a webhook endpoint',
  description: adminOnly,
  tags,
  security,
  request: { params: IdParams },
  responses: { 200: { description: 'The endpoint', ...jsonContent(EndpointSchema) }, ...problemResponses(400, 401, 403, 404, 429) },
});
registry.registerPath({
  method: 'delete',
  path: '/v1/webhook-endpoints/{id}',
  summary: 'Disable a webhook endpoint (idempotent); it receives nothing more',
  description: adminOnly,
  tags,
  security,
  request: { params: IdParams },
  responses: {
    200: { description: 'The disabled endpoint', ...jsonContent(EndpointSchema) },
    ...problemResponses(400, 401, 403, 404, 429),
  },
});

/** The customer an endpoint is registered for: the named one, else the key's own, else none (every customer's). */
function endpointCustomer(access: Access, requested: string | null | undefined): string | null {
  if (requested === null && access.principal.customer) {
    throw new ProblemError('forbidden', "A key restricted to a customer cannot register an endpoint for every customer's notifications.", {
      reason: 'customer_restricted',
    });
  }
  return requested === null ? null : (access.customerNamed(requested) ?? null);
}

/** Another customer's endpoint (or a global one) looks absent to a restricted key. */
function visible(access: Access, endpoint: EndpointRow | undefined, id: string): EndpointRow {
  if (!endpoint || !access.seesCustomerId(endpoint.customer_id)) throw new ProblemError('not_found', `No webhook endpoint ${id}.`);
  return endpoint;
}

const toJson = (e: EndpointRow): z.infer<typeof EndpointSchema> => ({
  id: e.id,
  url: e.url,
  customer: e.customer,
  status: e.disabled_at ? 'disabled' : 'active',
  created_at: e.created_at.toISOString(),
  disabled_at: e.disabled_at?.toISOString() ?? null,
});

/** Refuses a URL the webhook target policy does not allow, naming the rule. */
function assertAllowedTarget(url: string, targets: WebhookTargetPolicy): void {
  const verdict = checkWebhookTarget(url, targets);
  if (verdict.allowed) return;
  throw new ProblemError('unprocessable', `Webhook URL refused: ${verdict.detail}.`, {
    reason: 'webhook_target_forbidden',
    refusal: verdict.refusal,
    errors: [{ pointer: '#/url', detail: verdict.detail }],
  });
}

/** Responses carrying a secret must not sit in any cache. */
const noStore = (res: Response) => res.setHeader('Cache-Control', 'no-store');

export function webhookEndpointsRouter({
  pool,
  clock,
  targets = webhookTargetPolicy(),
}: {
  pool: Pool;
  clock: Clock;
  targets?: WebhookTargetPolicy;
}): Router {
  const router = Router();

  router.post('/v1/webhook-endpoints', authorize('webhook_endpoints', 'create'), async (req, res) => {
    const input = parseRequest(EndpointInputSchema, req.body, 'body');
    const access = accessOf(req);
    const customer = endpointCustomer(access, input.customer);
    assertAllowedTarget(input.url, targets);
    const customerId = customer === null ? null : access.seesCustomer(customer) ? await findCustomerId(pool, customer) : undefined;
    if (customerId === undefined) throw new ProblemError('unprocessable', `No customer "${customer}".`, { reason: 'unknown_customer' });
    const secret = generateWebhookSecret();
    const endpoint = await createEndpoint(pool, { url: input.url, customerId, secret, at: clock.now(), actor: access.actor });
    noStore(res);
    res
      .status(201)
      .location(`/v1/webhook-endpoints/${endpoint.id}`)
      .json({ ...toJson(endpoint), secret });
  });

  router.get('/v1/webhook-endpoints', authorize('webhook_endpoints', 'list'), async (req, res) => {
    const query = parseRequest(PageQuerySchema, req.query, 'query');
    const rows = await listEndpoints(pool, {
      limit: query.limit + 1,
      after: query.after,
      customerId: accessOf(req).principal.customer?.id,
    });
    const result = page(rows, query.limit, (e) => e.id);
    res.json({ data: result.data.map(toJson), next_cursor: result.next_cursor });
  });

  router.get('/v1/webhook-endpoints/:id', authorize('webhook_endpoints', 'get'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    res.json(toJson(visible(accessOf(req), await findEndpoint(pool, id), id)));
  });

  router.delete('/v1/webhook-endpoints/:id', authorize('webhook_endpoints', 'disable'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    const access = accessOf(req);
    const endpoint = await inTransaction(pool, async (client) => {
      const current = visible(access, await findEndpoint(client, id, true), id);
      return current.disabled_at ? current : disableEndpoint(client, current, clock.now(), access.actor);
    });
    res.json(toJson(endpoint));
  });

  return router;
}

// Queries. The notify activity reads endpoints with its own query: it needs the secret, these never return it.

interface EndpointRow {
  id: string;
  url: string;
  customer_id: string | null;
  customer: string | null;
  created_at: Date;
  disabled_at: Date | null;
}

const endpointColumns = 'e.id, e.url, e.customer_id, c.external_id as customer, e.created_at, e.disabled_at';

/** Inserts the endpoint and its audit entry (never the secret) in one transaction. */
async function createEndpoint(
  pool: Pool,
  input: { url: string; customerId: string | null; secret: string; at: Date; actor: AuditActor },
): Promise<EndpointRow> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<{ id: string }>(
      'insert into webhook_endpoints (customer_id, url, secret, created_at) values ($1, $2, $3, $4) returning id',
      [input.customerId, input.url, input.secret, input.at],
    );
    const endpoint = (await findEndpoint(client, rows[0]!.id))!;
    await recordAudit(client, {
      actor: input.actor,
      action: 'webhook_endpoint.created',
      subjectType: 'webhook_endpoint',
      subjectId: endpoint.id,
      details: { url: endpoint.url, customer: endpoint.customer },
    });
    return endpoint;
  });
}

async function findEndpoint(db: Queryable, id: string, lock = false): Promise<EndpointRow | undefined> {
  const { rows } = await db.query<EndpointRow>(
    `select ${endpointColumns} from webhook_endpoints e left join customers c on c.id = e.customer_id where e.id = $1${lock ? ' for update of e' : ''}`,
    [id],
  );
  return rows[0];
}

async function listEndpoints(
  db: Queryable,
  opts: { limit: number; after: string | undefined; customerId: string | undefined },
): Promise<EndpointRow[]> {
  const { rows } = await db.query<EndpointRow>(
    `select ${endpointColumns} from webhook_endpoints e left join customers c on c.id = e.customer_id
     where ($1::uuid is null or e.customer_id = $1) and ($2::text is null or e.id::text > $2)
     order by e.id::text limit $3`,
    [opts.customerId ?? null, opts.after ?? null, opts.limit],
  );
  return rows;
}

async function disableEndpoint(client: Queryable, endpoint: EndpointRow, at: Date, actor: AuditActor): Promise<EndpointRow> {
  await client.query('update webhook_endpoints set disabled_at = $2 where id = $1', [endpoint.id, at]);
  await recordAudit(client, {
    actor,
    action: 'webhook_endpoint.disabled',
    subjectType: 'webhook_endpoint',
    subjectId: endpoint.id,
    details: { url: endpoint.url, customer: endpoint.customer },
  });
  return { ...endpoint, disabled_at: at };
}
