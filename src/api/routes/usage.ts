import { Router } from 'express';
import { z } from 'zod';
import { Identifier, InstantSchema, text } from '../../domain/edge-schemas';
import { aggregations } from '../../domain/metering/meter';
import { granularities } from '../../metering/usage-query';
import type { UsageService } from '../../metering/usage-service';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, problemResponses, registry } from '../openapi';
import { ProblemError, parseRequest } from '../problem';
import { unwrap } from '../refusal';

const MAX_RANGE_DAYS = 400;
/** Minute buckets are for short periods (a demo's, a test's): two days of them are 2,880 buckets already. */
const MAX_MINUTE_RANGE_HOURS = 48;

const UsageQuerySchema = z
  .strictObject({
    customer: Identifier.optional().meta({ description: 'Customer external id; implied by a customer-restricted key' }),
    meter: text({ max: 64 }).meta({ description: 'Meter code' }),
    from: InstantSchema.meta({ description: 'Inclusive start (RFC 3339)' }),
    to: InstantSchema.meta({ description: 'Exclusive end (RFC 3339)' }),
    granularity: z
      .enum(granularities)
      .optional()
      .meta({ description: `UTC-aligned buckets; minute buckets over a range of at most ${MAX_MINUTE_RANGE_HOURS} hours` }),
  })
  .refine((q) => Date.parse(q.from) < Date.parse(q.to), { path: ['to'], message: 'must be after from' })
  .refine((q) => Date.parse(q.to) - Date.parse(q.from) <= MAX_RANGE_DAYS * 86_400_000, {
    path: ['to'],
    message: `the range may span at most ${MAX_RANGE_DAYS} days`,
  })
  .refine((q) => q.granularity !== 'minute' || Date.parse(q.to) - Date.parse(q.from) <= MAX_MINUTE_RANGE_HOURS * 3_600_000, {
    path: ['granularity'],
    message: `minute buckets cover a range of at most ${MAX_MINUTE_RANGE_HOURS} hours`,
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

export function usageRouter(usage: UsageService): Router {
  const router = Router();
  router.get('/v1/usage', authorize('usage', 'read'), async (req, res) => {
    const q = parseRequest(UsageQuerySchema, req.query, 'query');
    const access = accessOf(req);
    const customer = access.customerNamed(q.customer);
    if (!customer)
      throw new ProblemError('validation_failed', 'Invalid query: customer is required.', {
        errors: [{ pointer: '#/customer', detail: 'required' }],
      });
    const from = new Date(q.from);
    const to = new Date(q.to);
    const found = unwrap(
      await usage.read(access.principal, {
        customer,
        meter: q.meter,
        from,
        to,
        ...(q.granularity ? { granularity: q.granularity } : {}),
      }),
    );
    res.json({
      customer: found.customer.externalId,
      meter: found.meter.code,
      aggregation: found.meter.aggregation,
      from: from.toISOString(),
      to: to.toISOString(),
      value: found.usage.value,
      event_count: found.usage.eventCount,
      ...(found.usage.buckets ? { buckets: found.usage.buckets } : {}),
    });
  });
  return router;
}
