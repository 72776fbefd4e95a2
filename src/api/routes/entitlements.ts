import { Router } from 'express';
import { z } from 'zod';
import type { EntitlementStore } from '../../entitlements/store';
import type { CustomerDirectory } from '../../metering/customer-directory';
import type { MeterCatalog } from '../../metering/meter-catalog';
import { actingCustomer, principalOf, requireScope } from '../auth';
import { apiKeyAuth, problemResponses, registry } from '../openapi';
import { ProblemError, problemFromZod } from '../problem';

const CheckSchema = z
  .strictObject({
    customer: z.string().min(1).max(128).optional().meta({ description: 'Customer external id; implied by a customer-restricted key' }),
    meter: z.string().min(1).max(64).meta({ description: 'Meter code' }),
    quantity: z
      .string()
      .regex(/^\d{1,40}(\.\d{1,40})?$/, 'must be a non-negative decimal string such as "1" or "12.5"')
      .optional()
      .meta({ description: 'Usage about to be sent (default 0). Validated; the answer does not depend on it yet (see the operation description).' }),
  })
  .meta({ id: 'EntitlementCheck' });

const EntitlementAnswerSchema = z
  .object({
    customer: z.string(),
    meter: z.string(),
    allowed: z.boolean().meta({ description: 'Whether usage of this meter is accepted now' }),
    state: z.enum(['blocked', 'not_blocked']).meta({
      description: 'blocked: over a hard limit past its grace period, until resets_at or an upgrade. not_blocked: usage is accepted (soft thresholds and a running grace period are not told apart here).',
    }),
    resets_at: z.string().nullable().meta({ description: 'When a block lapses (the end of its billing period), ISO 8601 UTC; null when not blocked' }),
    upgrade_url: z.string().meta({ description: 'Where the customer can raise its limits' }),
  })
  .meta({ id: 'EntitlementAnswer' });

registry.registerPath({
  method: 'post',
  path: '/v1/entitlements/check',
  summary: 'May this customer use this meter now? Answered from memory, without a database read',
  description:
    'Every API process holds the blocked (customer, meter) pairs in memory, kept current by PostgreSQL LISTEN/NOTIFY ' +
    'within about a second of the billing workflow deciding a block or an unblock. The answer is that state: usage of ' +
    'a blocked meter is refused (and POST /v1/events refuses it with 429 quota_exceeded) until resets_at or an upgrade. ' +
    'Remaining allowance and soft-threshold state are not part of the answer: real-time usage lives in the billing ' +
    'workflow and in database counters, and neither is read per check.',
  tags: ['entitlements'],
  security: [{ [apiKeyAuth.name]: [] }],
  request: { body: { content: { 'application/json': { schema: CheckSchema } } } },
  responses: {
    200: { description: 'The answer (a blocked meter is a 200 with allowed false)', content: { 'application/json': { schema: EntitlementAnswerSchema } } },
    ...problemResponses(400, 401, 403, 404),
  },
});

export interface EntitlementsRouterDeps {
  store: EntitlementStore;
  catalog: MeterCatalog;
  customers: CustomerDirectory;
}

export function entitlementsRouter(deps: EntitlementsRouterDeps): Router {
  const router = Router();
  router.post('/v1/entitlements/check', requireScope('usage:read'), async (req, res) => {
    const parsed = CheckSchema.safeParse(req.body);
    if (!parsed.success) throw problemFromZod(parsed.error);
    const principal = principalOf(req);
    const externalId = actingCustomer(principal, parsed.data.customer);
    if (!externalId) throw new ProblemError('validation_failed', 'Invalid body: customer is required.', { errors: [{ pointer: '#/customer', detail: 'required' }] });
    // Customers and meters come from the metering caches: a read only for one not seen before.
    const [customerId, meter] = await Promise.all([
      principal.customer?.id ?? deps.customers.resolve(new Set([externalId])).then((ids) => ids.get(externalId)),
      deps.catalog.forCode(parsed.data.meter),
    ]);
    if (!customerId) throw new ProblemError('not_found', `No customer "${externalId}".`);
    if (!meter) throw new ProblemError('not_found', `No meter "${parsed.data.meter}".`);
    const block = deps.store.blockOf(customerId, meter.code);
    res.json({
      customer: externalId,
      meter: meter.code,
      allowed: !block,
      state: block ? 'blocked' : 'not_blocked',
      resets_at: block ? block.resetsAt.toISOString() : null,
      upgrade_url: deps.store.upgradeUrl,
    } satisfies z.infer<typeof EntitlementAnswerSchema>);
  });
  return router;
}
