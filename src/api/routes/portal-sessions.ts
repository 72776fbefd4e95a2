import { Router } from 'express';
import { z } from 'zod';
import { Identifier } from '../../domain/edge-schemas';
import { PORTAL_SESSION_SECONDS, type PortalSessionService } from '../../portal/service';
import type { PortalSession } from '../../portal/store';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, jsonContent, problemResponses, registry } from '../openapi';
import { parseRequest } from '../problem';
import { unwrap } from '../refusal';

const { min, max } = PORTAL_SESSION_SECONDS;

const NewSessionSchema = z
  .strictObject({
    customer: Identifier.meta({ description: 'External id of the customer the portal shows' }),
    expires_in: z
      .number()
      .int()
      .min(min)
      .max(max)
      .optional()
      .meta({ description: `Lifetime in seconds, ${min} to ${max} (default ${PORTAL_SESSION_SECONDS.default})` }),
  })
  .meta({ id: 'PortalSessionInput' });

const PortalSessionSchema = z
  .object({
    id: z.uuid(),
    customer: z.string().meta({ description: 'External id of the customer' }),
    expires_at: z.string(),
    revoked_at: z.string().nullable(),
    created_at: z.string(),
  })
  .meta({ id: 'PortalSession' });

const CreatedSessionSchema = PortalSessionSchema.extend({
  url: z.string().meta({
    description:
      'The portal page with the token in its fragment (`/portal#<token>`): browsers never send a fragment, so the token stays out of ' +
      'server and proxy logs. Shown once; only a hash of the token is stored.',
  }),
}).meta({ id: 'CreatedPortalSession' });

const CurrentSessionSchema = PortalSessionSchema.extend({
  upgrade_url: z.string().meta({ description: 'Where the customer can raise its limits (config PORTAL_UPGRADE_URL)' }),
}).meta({ id: 'CurrentPortalSession' });

const IdParams = z.object({ id: z.uuid() });

const security = [{ [apiKeyAuth.name]: [] }];
const tags = ['portal'];

registry.registerPath({
  method: 'post',
  path: '/v1/portal-sessions',
  summary: "Open a customer portal session: a short-lived, read-only URL showing one customer's usage, limits and invoices",
  description:
    'Requires `billing:admin` and a key not restricted to a customer. The session reads only what the portal page shows, only for ' +
    'its customer, until it expires (and never after the key that opened it expires) or is revoked. Audited.',
  tags,
  security,
  request: { body: jsonContent(NewSessionSchema) },
  responses: {
    201: { description: 'The session and its URL', ...jsonContent(CreatedSessionSchema) },
    ...problemResponses(400, 401, 403, 422),
  },
});
registry.registerPath({
  method: 'delete',
  path: '/v1/portal-sessions/{id}',
  summary: 'Revoke a portal session (idempotent): its URL stops working at the next request',
  description: 'Requires `billing:admin` and a key not restricted to a customer. Audited.',
  tags,
  security,
  request: { params: IdParams },
  responses: { 200: { description: 'The revoked session', ...jsonContent(PortalSessionSchema) }, ...problemResponses(400, 401, 403, 404) },
});
registry.registerPath({
  method: 'get',
  path: '/v1/portal-sessions/current',
  summary: 'The portal session making the request (what the portal page asks first)',
  description: 'Any credential may ask; anything but a portal session token gets 404 `not_a_portal_session`.',
  tags,
  security,
  responses: { 200: { description: 'The session', ...jsonContent(CurrentSessionSchema) }, ...problemResponses(401, 404) },
});

const toJson = (s: PortalSession): z.infer<typeof PortalSessionSchema> => ({
  id: s.id,
  customer: s.customer.externalId,
  expires_at: s.expiresAt.toISOString(),
  revoked_at: s.revokedAt?.toISOString() ?? null,
  created_at: s.createdAt.toISOString(),
});

/** `upgradeUrl`: what the portal links to when a meter is blocked (config PORTAL_UPGRADE_URL). */
export function portalSessionsRouter(sessions: PortalSessionService, opts: { upgradeUrl: string }): Router {
  const router = Router();

  router.post('/v1/portal-sessions', authorize('portal_sessions', 'create'), async (req, res) => {
    const body = parseRequest(NewSessionSchema, req.body, 'body');
    const { session, token } = unwrap(
      await sessions.create(accessOf(req).principal, {
        customer: body.customer,
        ...(body.expires_in === undefined ? {} : { expiresInSeconds: body.expires_in }),
      }),
    );
    // Absolute, as the admin's own request reached this API (trust proxy is off: the Host header as sent).
    const url = `${req.protocol}://${req.get('host')}/portal#${token}`;
    res.status(201).json({ ...toJson(session), url } satisfies z.infer<typeof CreatedSessionSchema>);
  });

  router.delete('/v1/portal-sessions/:id', authorize('portal_sessions', 'revoke'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    res.json(toJson(unwrap(await sessions.revoke(accessOf(req).principal, id))));
  });

  router.get('/v1/portal-sessions/current', authorize('portal_sessions', 'current'), async (req, res) => {
    const session = unwrap(await sessions.current(accessOf(req).principal));
    res.json({ ...toJson(session), upgrade_url: opts.upgradeUrl } satisfies z.infer<typeof CurrentSessionSchema>);
  });

  return router;
}
