import { Router, type Response } from 'express';
import { z } from 'zod';
import { Identifier, InstantSchema } from '../../domain/edge-schemas';
import type { Refusal, Result } from '../../domain/result';
import type { KeyRefusalReason, KeyService } from '../../keys/service';
import { keyStatus } from '../../keys/status';
import type { ApiKey } from '../../keys/store';
import type { Clock } from '../../clock';
import { scopes } from '../../keys/principal';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, jsonContent, problemResponses, registry } from '../openapi';
import { page, pageSchema, PageQuerySchema } from '../pagination';
import { ProblemError, parseRequest } from '../problem';
import { problemFromRefusal, unwrap } from '../refusal';

const ScopeSchema = z.enum(scopes);
const FutureInstant = InstantSchema.meta({ description: 'RFC 3339 instant, in the future', example: '2027-01-01T00:00:00Z' });
const RateLimitSchema = z
  .strictObject({
    per_second: z.number().int().min(1).max(100_000).meta({ description: 'Steady requests per second' }),
    burst: z.number().int().min(0).max(1_000_000).meta({ description: 'Extra requests above the steady rate, per 10-second window' }),
  })
  .meta({ id: 'RateLimit' });

const KeyInputSchema = z
  .strictObject({
    name: Identifier.meta({ example: 'ingest, production' }),
    environment: z.enum(['live', 'test']).default('live'),
    scopes: z.array(ScopeSchema).min(1),
    customer: Identifier.nullable()
      .optional()
      .meta({ description: 'External id of the one customer the key may act for; omit for any customer' }),
    expires_at: FutureInstant.nullable().optional(),
    rate_limit: RateLimitSchema.optional().meta({ description: 'Defaults from API_KEY_DEFAULT_RATE_PER_SECOND / API_KEY_DEFAULT_BURST' }),
  })
  .meta({ id: 'ApiKeyInput' });

const KeyPatchSchema = z
  .strictObject({
    name: Identifier.optional(),
    scopes: z.array(ScopeSchema).min(1).optional(),
    expires_at: FutureInstant.nullable().optional(),
    rate_limit: RateLimitSchema.optional(),
  })
  .meta({ id: 'ApiKeyPatch' });

const RotateInputSchema = z
  .strictObject({
    grace_seconds: z
      .number()
      .int()
      .min(0)
      .max(30 * 24 * 3600)
      .default(86_400)
      .meta({ description: 'How long the old key keeps working (0: stops now). Default one day' }),
    expires_at: FutureInstant.nullable().optional().meta({ description: 'Expiry of the new key' }),
  })
  .meta({ id: 'ApiKeyRotation' });

const ApiKeySchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    environment: z.enum(['live', 'test']),
    scopes: z.array(ScopeSchema),
    customer: z.string().nullable(),
    start: z.string().meta({ description: 'The non-secret beginning of the key, to recognise it', example: 'mf_live_3kT9' }),
    status: z.enum(['active', 'revoked', 'expired']),
    rate_limit: RateLimitSchema,
    expires_at: z.string().nullable(),
    revoked_at: z.string().nullable(),
    replaced_by: z.uuid().nullable(),
    created_by: z.string(),
    created_at: z.string(),
  })
  .meta({ id: 'ApiKey' });

const IssuedKeySchema = ApiKeySchema.extend({
  secret: z.string().meta({ description: 'The API key itself. Shown only in this response: store it now.', example: 'mf_live_3kT9…' }),
}).meta({ id: 'IssuedApiKey' });

const RotatedKeySchema = IssuedKeySchema.extend({ previous: ApiKeySchema }).meta({ id: 'RotatedApiKey' });

const CurrentKeySchema = z
  .object({
    id: z.uuid(),
    environment: z.enum(['live', 'test']),
    scopes: z.array(ScopeSchema),
    customer: z.string().nullable(),
  })
  .meta({ id: 'CurrentApiKey' });

const IdParams = z.object({ id: z.uuid() });

const security = [{ [apiKeyAuth.name]: [] }];
const tags = ['keys'];
const adminOnly = "Requires the `keys:admin` scope. A key restricted to a customer sees and manages only that customer's keys.";

registry.registerPath({
  method: 'post',
  path: '/v1/keys',
  summary: 'Create an API key; its secret is in this response only',
  description: `${adminOnly} A key grants only what it holds itself: its scopes, its customer, at most its rate limit and its expiry (omitted ones default to them).`,
  tags,
  security,
  request: { body: jsonContent(KeyInputSchema) },
  responses: { 201: { description: 'Created', ...jsonContent(IssuedKeySchema) }, ...problemResponses(400, 401, 403, 422, 429) },
});
registry.registerPath({
  method: 'get',
  path: '/v1/keys',
  summary: 'List API keys (never their secrets), oldest first',
  description: adminOnly,
  tags,
  security,
  request: { query: PageQuerySchema },
  responses: { 200: { description: 'A page of keys', ...jsonContent(pageSchema(ApiKeySchema)) }, ...problemResponses(400, 401, 403, 429) },
});
registry.registerPath({
  method: 'get',
  path: '/v1/keys/current',
  summary: 'The key making this request: its id, scopes and customer',
  description: 'Any valid key (a portal session token is not a key: 403); answered from memory.',
  tags,
  security,
  responses: { 200: { description: 'The calling key', ...jsonContent(CurrentKeySchema) }, ...problemResponses(401, 403, 429) },
});
registry.registerPath({
  method: 'get',
  path: '/v1/keys/{id}',
  summary: 'Get an API key',
  description: adminOnly,
  tags,
  security,
  request: { params: IdParams },
  responses: { 200: { description: 'The key', ...jsonContent(ApiKeySchema) }, ...problemResponses(400, 401, 403, 404, 429) },
});
registry.registerPath({
  method: 'patch',
  path: '/v1/keys/{id}',
  summary: "Change an active key's name, scopes, expiry or rate limit",
  description: `${adminOnly} Takes effect in every API process within a second.`,
  tags,
  security,
  request: { params: IdParams, body: jsonContent(KeyPatchSchema) },
  responses: { 200: { description: 'The changed key', ...jsonContent(ApiKeySchema) }, ...problemResponses(400, 401, 403, 404, 409, 429) },
});
registry.registerPath({
  method: 'post',
  path: '/v1/keys/{id}/revoke',
  summary: 'Revoke a key, at once and for good (idempotent)',
  description: `${adminOnly} Every API process refuses the key within a second.`,
  tags,
  security,
  request: { params: IdParams },
  responses: { 200: { description: 'The revoked key', ...jsonContent(ApiKeySchema) }, ...problemResponses(400, 401, 403, 404, 429) },
});
registry.registerPath({
  method: 'post',
  path: '/v1/keys/{id}/rotate',
  summary: 'Issue a successor key; the old one works until the grace deadline',
  description: `${adminOnly} The new key has the same name, scopes, customer and rate limit.`,
  tags,
  security,
  request: { params: IdParams, body: jsonContent(RotateInputSchema) },
  responses: {
    201: { description: 'The new key (secret shown once) and the old one', ...jsonContent(RotatedKeySchema) },
    ...problemResponses(400, 401, 403, 404, 409, 429),
  },
});

const iso = (d: Date | null) => d?.toISOString() ?? null;

/** A key's wire shape (never its secret); the admin CLI's --json prints the same. */
export function keyToJson(k: ApiKey, now: Date): z.infer<typeof ApiKeySchema> {
  return {
    id: k.id,
    name: k.name,
    environment: k.environment,
    scopes: k.scopes,
    customer: k.customer?.externalId ?? null,
    start: k.start,
    status: keyStatus(k, now),
    rate_limit: { per_second: k.ratePerSecond, burst: k.burst },
    expires_at: iso(k.expiresAt),
    revoked_at: iso(k.revokedAt),
    replaced_by: k.replacedBy,
    created_by: k.createdBy,
    created_at: k.createdAt.toISOString(),
  };
}

/** Responses carrying a secret must not sit in any cache. */
const noStore = (res: Response) => res.setHeader('Cache-Control', 'no-store');

/** A field only the service can judge (an expiry already past) is refused like any other invalid field: 400. */
function problemOf(refusal: Refusal<KeyRefusalReason>): ProblemError {
  if (refusal.reason !== 'invalid_field') return problemFromRefusal(refusal);
  const { field, detail } = refusal.details as { field: string; detail: string };
  return new ProblemError('validation_failed', refusal.message, { errors: [{ pointer: `#/${field}`, detail }] });
}

/** `unwrap` for the key service's results that may refuse a field (see `problemOf`). */
function valueOf<T>(result: Result<T, KeyRefusalReason>): T {
  if (!result.ok) throw problemOf(result);
  return result.value;
}

const optionalDate = (value: string | null | undefined) => (value === undefined ? undefined : value === null ? null : new Date(value));

export function keysRouter(service: KeyService, clock: Clock): Router {
  const router = Router();

  router.post('/v1/keys', authorize('keys', 'create'), async (req, res) => {
    const input = parseRequest(KeyInputSchema, req.body, 'body');
    const { secret, key } = valueOf(
      await service.create(accessOf(req).principal, {
        name: input.name,
        environment: input.environment,
        scopes: input.scopes,
        customer: input.customer,
        expiresAt: optionalDate(input.expires_at),
        ratePerSecond: input.rate_limit?.per_second,
        burst: input.rate_limit?.burst,
      }),
    );
    noStore(res);
    res
      .status(201)
      .location(`/v1/keys/${key.id}`)
      .json({ ...keyToJson(key, clock.now()), secret });
  });

  router.get('/v1/keys', authorize('keys', 'list'), async (req, res) => {
    const query = parseRequest(PageQuerySchema.extend({ after: z.uuid().optional() }), req.query, 'query');
    const rows = await service.list(accessOf(req).principal, { limit: query.limit + 1, after: query.after });
    const result = page(rows, query.limit, (k) => k.id);
    const now = clock.now();
    res.json({ data: result.data.map((k) => keyToJson(k, now)), next_cursor: result.next_cursor });
  });

  router.get('/v1/keys/current', authorize('keys', 'current'), (req, res) => {
    const { keyId, environment, scopes: held, customer } = accessOf(req).principal;
    res.json({ id: keyId, environment, scopes: held, customer: customer?.externalId ?? null });
  });

  router.get('/v1/keys/:id', authorize('keys', 'get'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    res.json(keyToJson(unwrap(await service.get(accessOf(req).principal, id)), clock.now()));
  });

  router.patch('/v1/keys/:id', authorize('keys', 'update'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    const patch = parseRequest(KeyPatchSchema, req.body, 'body');
    const key = valueOf(
      await service.update(accessOf(req).principal, id, {
        name: patch.name,
        scopes: patch.scopes,
        expiresAt: optionalDate(patch.expires_at),
        ratePerSecond: patch.rate_limit?.per_second,
        burst: patch.rate_limit?.burst,
      }),
    );
    res.json(keyToJson(key, clock.now()));
  });

  router.post('/v1/keys/:id/revoke', authorize('keys', 'revoke'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    res.json(keyToJson(unwrap(await service.revoke(accessOf(req).principal, id)), clock.now()));
  });

  router.post('/v1/keys/:id/rotate', authorize('keys', 'rotate'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    const input = parseRequest(RotateInputSchema, req.body === undefined ? {} : req.body, 'body');
    const { secret, key, previous } = valueOf(
      await service.rotate(accessOf(req).principal, id, { graceSeconds: input.grace_seconds, expiresAt: optionalDate(input.expires_at) }),
    );
    const now = clock.now();
    noStore(res);
    res
      .status(201)
      .location(`/v1/keys/${key.id}`)
      .json({ ...keyToJson(key, now), secret, previous: keyToJson(previous, now) });
  });

  return router;
}
