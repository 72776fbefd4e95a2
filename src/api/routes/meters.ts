import { Router } from 'express';
import { z } from 'zod';
import type { Pool } from '../../db/pool';
import { text } from '../../domain/edge-schemas';
import { aggregations, MeterInputSchema } from '../../domain/metering/meter';
import type { MeterCatalog } from '../../metering/meter-catalog';
import { createMeter, getMeter, listMeters, type StoredMeter } from '../../metering/meter-store';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, problemResponses, registry } from '../openapi';
import { page, pageSchema, PageQuerySchema } from '../pagination';
import { ProblemError, parseRequest, problemFromZod } from '../problem';

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

const sameDefinition = (a: ReturnType<typeof meterToJson>, b: ReturnType<typeof meterToJson>) =>
  JSON.stringify({ ...a, created_at: '' }) === JSON.stringify({ ...b, created_at: '' });

export function metersRouter(pool: Pool, catalog: MeterCatalog): Router {
  const router = Router();

  router.post('/v1/meters', authorize('meters', 'create'), async (req, res) => {
    const parsed = MeterInputSchema.safeParse(req.body);
    if (!parsed.success) throw problemFromZod(parsed.error);
    const access = accessOf(req);
    const result = await createMeter(pool, parsed.data, access.actor);
    if (result.created) {
      catalog.add(result.meter);
      res.status(201).location(`/v1/meters/${result.meter.code}`).json(meterToJson(result.meter));
      return;
    }
    const wanted = { ...parsed.data, value_property: parsed.data.value_property ?? null, created_at: '' };
    if (result.clash === 'code' && sameDefinition(meterToJson(result.meter), wanted)) {
      res.status(200).json(meterToJson(result.meter));
      return;
    }
    throw new ProblemError(
      'conflict',
      result.clash === 'code'
        ? `Meter "${parsed.data.code}" already exists with another definition.`
        : `Events of type "${parsed.data.event_type}" already feed meter "${result.meter.code}"; an event type feeds one meter.`,
      access.allows('meters', 'get') ? { existing: meterToJson(result.meter) } : {},
    );
  });

  router.get('/v1/meters/:code', authorize('meters', 'get'), async (req, res) => {
    const { code } = parseRequest(CodeParams, req.params, 'params');
    const meter = await getMeter(pool, code);
    if (!meter) throw new ProblemError('not_found', `No meter "${code}".`);
    res.json(meterToJson(meter));
  });

  router.get('/v1/meters', authorize('meters', 'list'), async (req, res) => {
    const query = PageQuerySchema.safeParse(req.query);
    if (!query.success) throw problemFromZod(query.error, 'query');
    const rows = await listMeters(pool, query.data.limit + 1, query.data.after);
    const result = page(rows, query.data.limit, (m) => m.code);
    res.json({ data: result.data.map(meterToJson), next_cursor: result.next_cursor });
  });

  return router;
}
