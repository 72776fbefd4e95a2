import { Router, type Response } from 'express';
import { z } from 'zod';
import { HttpUrlSchema, Identifier } from '../../domain/edge-schemas';
import type { WebhookEndpoint } from '../../webhooks/endpoint-store';
import type { WebhookEndpointService } from '../../webhooks/service';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, jsonContent, problemResponses, registry } from '../openapi';
import { page, pageSchema, PageQuerySchema } from '../pagination';
import { parseRequest } from '../problem';
import { unwrap } from '../refusal';

/* The webhook endpoints API over WebhookEndpointService (src/webhooks/service.ts). */

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

const toJson = (e: WebhookEndpoint): z.infer<typeof EndpointSchema> => ({
  id: e.id,
  url: e.url,
  customer: e.customer,
  status: e.disabledAt ? 'disabled' : 'active',
  created_at: e.createdAt.toISOString(),
  disabled_at: e.disabledAt?.toISOString() ?? null,
});

/** Responses carrying a secret must not sit in any cache. */
const noStore = (res: Response) => res.setHeader('Cache-Control', 'no-store');

export function webhookEndpointsRouter({ webhooks }: { webhooks: WebhookEndpointService }): Router {
  const router = Router();

  router.post('/v1/webhook-endpoints', authorize('webhook_endpoints', 'create'), async (req, res) => {
    const input = parseRequest(EndpointInputSchema, req.body, 'body');
    const { endpoint, secret } = unwrap(await webhooks.create(accessOf(req).principal, input));
    noStore(res);
    res
      .status(201)
      .location(`/v1/webhook-endpoints/${endpoint.id}`)
      .json({ ...toJson(endpoint), secret });
  });

  router.get('/v1/webhook-endpoints', authorize('webhook_endpoints', 'list'), async (req, res) => {
    const query = parseRequest(PageQuerySchema, req.query, 'query');
    const endpoints = await webhooks.list(accessOf(req).principal, { limit: query.limit + 1, after: query.after });
    const result = page(endpoints, query.limit, (e) => e.id);
    res.json({ data: result.data.map(toJson), next_cursor: result.next_cursor });
  });

  router.get('/v1/webhook-endpoints/:id', authorize('webhook_endpoints', 'get'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    res.json(toJson(unwrap(await webhooks.get(accessOf(req).principal, id))));
  });

  router.delete('/v1/webhook-endpoints/:id', authorize('webhook_endpoints', 'disable'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    res.json(toJson(unwrap(await webhooks.disable(accessOf(req).principal, id))));
  });

  return router;
}
