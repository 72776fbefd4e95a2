import { Router } from 'express';
import { z } from 'zod';
import type { Pool } from '../../db/pool';
import { Identifier, InstantSchema, text } from '../../domain/edge-schemas';
import { aggregations } from '../../domain/metering/meter';
import { getCustomer } from '../../customers/store';
import { getMeter } from '../../metering/meter-store';
import { queryUsage } from '../../metering/usage-query';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, problemResponses, registry } from '../openapi';
import { ProblemError, problemFromZod } from '../problem';

const MAX_RANGE_DAYS = 400;

const UsageQuerySchema = z
  .strictObject({
    customer: Identifier.optional().meta({ description: 'Customer external id; implied by a customer-restricted key' }),
    meter: text({ max: 64 }).meta({ description: 'Meter code' }),
    from: InstantSchema.meta({ description: 'Inclusive start (RFC 3339)' }),
    to: InstantSchema.meta({ description: 'Exclusive end (RFC 3339)' }),
    granularity: z.enum(['hour', 'day']).optional().meta({ description: 'UTC-aligned buckets' }),
  })
  .refine((q) => Date.parse(q.from) < Date.parse(q.to), { path: ['to'], message: 'must be after from' })
  .refine((q) => Date.parse(q.to) - Date.parse(q.from) <= MAX_RANGE_DAYS * 86_400_000, {
    path: ['to'],
    message: `the range may span at most ${MAX_RANGE_DAYS} days`,
  });

const UsageSchema = z
  .object({
    customer: z.string(),
    meter: z.string(),
    aggregation: z.enum(aggregations),
    from: z.string(),
    to: z.string(),
    value: z.string().nullable().meta({ description: 'Exact decimal; null for max/latest without events' }),
    event_count: z.string(),
    buckets: z.array(z.object({ start: z.string(), end: z.string(), value: z.string().nullable() })).optional(),
  })
  .meta({ id: 'MeterUsage' });

registry.registerPath({
  method: 'get',
  path: '/v1/usage',
  summary: "A customer's usage of one meter over [from, to), from the stored events",
  tags: ['usage'],
  security: [{ [apiKeyAuth.name]: [] }],
  request: { query: UsageQuerySchema },
  responses: {
    200: { description: 'Usage', content: { 'application/json': { schema: UsageSchema } } },
    ...problemResponses(400, 401, 403, 404),
  },
});

export function usageRouter(pool: Pool): Router {
  const router = Router();
  router.get('/v1/usage', authorize('usage', 'read'), async (req, res) => {
    const parsed = UsageQuerySchema.safeParse(req.query);
    if (!parsed.success) throw problemFromZod(parsed.error, 'query');
    const q = parsed.data;
    const access = accessOf(req);
    const externalId = access.customerNamed(q.customer);
    if (!externalId)
      throw new ProblemError('validation_failed', 'Invalid query: customer is required.', {
        errors: [{ pointer: '#/customer', detail: 'required' }],
      });
    const [customer, meter] = await Promise.all([
      access.seesCustomer(externalId) ? getCustomer(pool, externalId) : undefined,
      getMeter(pool, q.meter),
    ]);
    if (!customer) throw new ProblemError('not_found', `No customer "${externalId}".`);
    if (!meter) throw new ProblemError('not_found', `No meter "${q.meter}".`);
    const from = new Date(q.from);
    const to = new Date(q.to);
    const usage = await queryUsage(pool, {
      customerId: customer.id,
      meter,
      from,
      to,
      ...(q.granularity ? { granularity: q.granularity } : {}),
    });
    res.json({
      customer: customer.externalId,
      meter: meter.code,
      aggregation: meter.aggregation,
      from: from.toISOString(),
      to: to.toISOString(),
      value: usage.value,
      event_count: usage.eventCount,
      ...(usage.buckets ? { buckets: usage.buckets } : {}),
    });
  });
  return router;
}
