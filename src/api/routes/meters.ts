import { Router } from 'express';
import { z } from 'zod';
import { text } from '../../domain/edge-schemas';
import { aggregations, MeterInputSchema } from '../../domain/metering/meter';
import type { MeterService } from '../../meters/service';
import type { StoredMeter } from '../../meters/store';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, problemResponses, registry } from '../openapi';
import { page, pageSchema, PageQuerySchema } from '../pagination';
import { parseRequest } from '../problem';
import { problemFromRefusal, unwrap } from '../refusal';

const MeterSchema = z
  .object({
    code: z.string(),
    name: z.string(),
    event_type: z.string(),
    aggregation: z.enum(aggregations),
    value_property: z.string().nullable(),
    filter: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
    created_at: z.string(),
  })
  .meta({ id: 'Meter' });

const CodeParams = z.object({ code: text({ max: 64 }) });

const security = [{ [apiKeyAuth.name]: [] }];
registry.registerPath({
  method: 'post',
  path: '/v1/meters',
  summary: 'Create a meter (one per event type; idempotent on identical input)',
  tags: ['meters'],
  security,
  request: { body: { content: { 'application/json': { schema: MeterInputSchema } } } },
  responses: {
    201: { description: 'Created', content: { 'application/json': { schema: MeterSchema } } },
    200: { description: 'Already exists, identical', content: { 'application/json': { schema: MeterSchema } } },
    ...problemResponses(400, 401, 403, 409),
  },
});
registry.registerPath({
  method: 'get',
  path: '/v1/meters/{code}',
  summary: 'Get a meter',
  tags: ['meters'],
  security,
  request: { params: CodeParams },
  responses: {
    200: { description: 'The meter', content: { 'application/json': { schema: MeterSchema } } },
    ...problemResponses(401, 403, 404),
  },
});
registry.registerPath({
  method: 'get',
  path: '/v1/meters',
  summary: 'List meters by code',
  tags: ['meters'],
  security,
  request: { query: PageQuerySchema },
  responses: {
    200: { description: 'A page of meters', content: { 'application/json': { schema: pageSchema(MeterSchema) } } },
    ...problemResponses(400, 401, 403),
  },
});

/** A meter's wire shape; the admin CLI's --json prints the same. */
export const meterToJson = (m: StoredMeter) => ({
  code: m.code,
  name: m.name,
  event_type: m.eventType,
  aggregation: m.aggregation,
  value_property: m.valueProperty,
  filter: m.filter,
  created_at: m.createdAt.toISOString(),
});

export function metersRouter(meters: MeterService): Router {
  const router = Router();

  router.post('/v1/meters', authorize('meters', 'create'), async (req, res) => {
    const input = parseRequest(MeterInputSchema, req.body, 'body');
    const access = accessOf(req);
    const result = await meters.create(access.principal, input);
    if (!result.ok) {
      // The existing meter is shown only to a key that could read it anyway.
      const { existing } = result.details;
      throw problemFromRefusal({ ...result, details: access.allows('meters', 'get') ? { existing: meterToJson(existing) } : {} });
    }
    const { created, meter } = result.value;
    if (created) res.status(201).location(`/v1/meters/${meter.code}`);
    res.json(meterToJson(meter));
  });

  router.get('/v1/meters/:code', authorize('meters', 'get'), async (req, res) => {
    const { code } = parseRequest(CodeParams, req.params, 'params');
    res.json(meterToJson(unwrap(await meters.get(code))));
  });

  router.get('/v1/meters', authorize('meters', 'list'), async (req, res) => {
    const query = parseRequest(PageQuerySchema, req.query, 'query');
    const rows = await meters.list(query.limit + 1, query.after);
    const result = page(rows, query.limit, (m) => m.code);
    res.json({ data: result.data.map(meterToJson), next_cursor: result.next_cursor });
  });

  return router;
}
