import { Router } from 'express';
import { z } from 'zod';
import { Identifier, text } from '../../domain/edge-schemas';
import type { EntitlementService } from '../../entitlements/service';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, problemResponses, registry } from '../openapi';
import { ProblemError, parseRequest } from '../problem';
import { unwrap } from '../refusal';

const CheckSchema = z
  .strictObject({
    customer: Identifier.optional().meta({ description: 'Customer external id; implied by a customer-restricted key' }),
    meter: text({ max: 64 }).meta({ description: 'Meter code' }),
    quantity: z
      .string()
      .regex(/^\d{1,40}(\.\d{1,40})?$/, 'must be a non-negative decimal string such as "1" or "12.5"')
      .optional()
      .meta({
        description:
          'Usage about to be sent (default 0). Validated; compare it with `remaining`: only a block (after the grace period) refuses usage.',
      }),
  })
  .meta({ id: 'EntitlementCheck' });

const EntitlementAnswerSchema = z
  .object({
    customer: z.string(),
    meter: z.string(),
    allowed: z.boolean().meta({ description: 'Whether usage of this meter is accepted now (neither blocked nor spend-blocked)' }),
    state: z.enum(['blocked', 'not_blocked']).meta({
      description:
        'blocked: over a hard limit past its grace period, until resets_at or an upgrade. not_blocked: usage is accepted (soft thresholds and a running grace period are not told apart here).',
    }),
    resets_at: z
      .string()
      .nullable()
      .meta({ description: 'When a block lapses, or the limits reset: the end of the billing period, ISO 8601 UTC; null when unknown' }),
    upgrade_url: z.string().meta({ description: 'Where the customer can raise its limits' }),
    limit_state: z.enum(['ok', 'over_limit_in_grace', 'overage', 'blocked']).nullable().meta({
      description:
        "The quota policy's state as the billing workflow last evaluated it; null when the meter has no limit or nothing was published yet",
    }),
    usage: z.string().nullable().meta({ description: 'Usage in the current period as of usage_as_of' }),
    hard_limit: z.string().nullable(),
    remaining: z.string().nullable().meta({ description: 'hard_limit − usage, at least 0; null without a hard limit' }),
    thresholds_notified: z.array(z.string()).meta({ description: 'Soft thresholds already crossed (and notified) this period' }),
    usage_as_of: z
      .string()
      .nullable()
      .meta({ description: 'When the workflow evaluated it: usage reaches it about a second after it is stored' }),
    spend_blocked: z.boolean().meta({
      description:
        "The subscription's spend limit is reached past its grace period: usage of this charged meter is refused (POST /v1/events: 402) until the cap is raised or credit is topped up (a credit_only plan) at top_up_url, or the period ends.",
    }),
    spend_runway: z.string().nullable().meta({
      description:
        'With a spend limit: the usage of this meter at which the priced usage of the period reaches it, the other meters staying where they are (as of usage_as_of); null otherwise.',
    }),
    top_up_url: z.string().meta({ description: 'Where the customer can top up or raise its spend cap' }),
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
    'Usage, the hard limit, what remains and the soft thresholds crossed are the state the billing workflow published after ' +
    'its last evaluation (about a second behind ingestion), also held in memory.',
  tags: ['entitlements'],
  security: [{ [apiKeyAuth.name]: [] }],
  request: { body: { content: { 'application/json': { schema: CheckSchema } } } },
  responses: {
    200: {
      description: 'The answer (a blocked meter is a 200 with allowed false)',
      content: { 'application/json': { schema: EntitlementAnswerSchema } },
    },
    ...problemResponses(400, 401, 403, 404),
  },
});

export function entitlementsRouter(entitlements: EntitlementService): Router {
  const router = Router();
  router.post('/v1/entitlements/check', authorize('entitlements', 'check'), async (req, res) => {
    const body = parseRequest(CheckSchema, req.body, 'body');
    const access = accessOf(req);
    const customer = access.customerNamed(body.customer);
    if (!customer)
      throw new ProblemError('validation_failed', 'Invalid body: customer is required.', {
        errors: [{ pointer: '#/customer', detail: 'required' }],
      });
    const { block, spendBlock, quota, remaining, ...checked } = unwrap(
      await entitlements.check(access.principal, { customer, meter: body.meter }),
    );
    res.json({
      customer: checked.customer,
      meter: checked.meter,
      allowed: !block && !spendBlock,
      state: block ? 'blocked' : 'not_blocked',
      resets_at: (block?.resetsAt ?? spendBlock?.resetsAt ?? quota?.resetsAt)?.toISOString() ?? null,
      upgrade_url: checked.upgradeUrl,
      limit_state: (quota?.state as z.infer<typeof EntitlementAnswerSchema>['limit_state']) ?? null,
      usage: quota?.usage ?? null,
      hard_limit: quota?.hardLimit ?? null,
      remaining: remaining?.toFixed() ?? null,
      thresholds_notified: quota?.notified ?? [],
      usage_as_of: quota?.asOf.toISOString() ?? null,
      spend_blocked: spendBlock !== undefined,
      spend_runway: quota?.spendRunway ?? null,
      top_up_url: checked.topUpUrl,
    } satisfies z.infer<typeof EntitlementAnswerSchema>);
  });
  return router;
}
