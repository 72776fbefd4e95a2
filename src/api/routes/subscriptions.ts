import { Router, type Request } from 'express';
import { z } from 'zod';
import { getPlan } from '../../billing/plan-store';
import type { SubscriptionLifecycle } from '../../billing/subscription-lifecycle';
import {
  cancelSubscription,
  changePlan,
  createSubscription,
  getActiveSubscription,
  getSubscription,
  subscriptionStatuses,
  type Subscription,
} from '../../billing/subscription-store';
import type { Clock } from '../../clock';
import type { Pool } from '../../db/pool';
import { Identifier, InstantSchema, isRepresentableInstant } from '../../domain/edge-schemas';
import { periodAt, periodContaining, type Period } from '../../domain/periods';
import { PlanCodeSchema } from '../../domain/plan';
import { getCustomer } from '../../customers/store';
import { accessOf, authorize, type Access } from '../authorization';
import { apiKeyAuth, jsonContent, problemResponses, registry } from '../openapi';
import { ProblemError, parseRequest } from '../problem';

export const SubscriptionInputSchema = z
  .strictObject({
    customer: Identifier.meta({ description: 'External id of the customer' }),
    plan: PlanCodeSchema.meta({ description: 'Code of the plan' }),
    start: InstantSchema.optional().meta({
      description: 'The subscription start, which anchors every billing period; default now. May be in the past or the future.',
    }),
  })
  .meta({ id: 'SubscriptionInput' });

const PeriodSchema = z
  .object({ start: z.string(), end: z.string() })
  .meta({ id: 'BillingPeriod', description: 'Half-open: [start, end).' });

const SubscriptionSchema = z
  .object({
    id: z.uuid(),
    customer: z.string().meta({ description: 'External id of the customer' }),
    plan: z.string().meta({ description: 'Code of the current plan' }),
    anchor: z.string().meta({ description: 'The subscription start; periods are derived from it' }),
    status: z.enum(subscriptionStatuses),
    current_period: PeriodSchema.nullable().meta({
      description: 'The period in progress (the first one when the start is still ahead); null once canceled.',
    }),
    cancel_at: z.string().nullable().meta({ description: 'When billing ends: the final period is cut short here' }),
    canceled_at: z.string().nullable().meta({ description: 'When the cancellation was recorded' }),
    created_at: z.string(),
  })
  .meta({ id: 'Subscription' });

const ChangePlanInputSchema = z
  .strictObject({ plan: PlanCodeSchema.meta({ description: 'Code of the plan to move to' }) })
  .meta({ id: 'ChangePlanInput' });

const IdParams = z.object({ id: z.uuid() });
const ExternalIdParams = z.object({ externalId: Identifier });

const security = [{ [apiKeyAuth.name]: [] }];
const tags = ['subscriptions'];
const restricted = "A key restricted to a customer sees only that customer's subscriptions.";

registry.registerPath({
  method: 'post',
  path: '/v1/subscriptions',
  summary: 'Subscribe a customer to a plan and start its billing workflow',
  description:
    'Requires `billing:admin`. A customer has at most one active subscription: another one is a 409, while repeating the same ' +
    'request (same customer and plan, and the same start or none) returns the existing subscription with 200, so a retry is safe.',
  tags,
  security,
  request: { body: jsonContent(SubscriptionInputSchema) },
  responses: {
    201: { description: 'Subscribed; the response carries the current billing period', ...jsonContent(SubscriptionSchema) },
    200: { description: 'The same subscription already exists', ...jsonContent(SubscriptionSchema) },
    ...problemResponses(400, 401, 403, 409, 422, 503),
  },
});
registry.registerPath({
  method: 'get',
  path: '/v1/subscriptions/{id}',
  summary: 'Get a subscription',
  description: restricted,
  tags,
  security,
  request: { params: IdParams },
  responses: { 200: { description: 'The subscription', ...jsonContent(SubscriptionSchema) }, ...problemResponses(400, 401, 403, 404) },
});
registry.registerPath({
  method: 'get',
  path: '/v1/customers/{externalId}/subscription',
  summary: "A customer's active subscription",
  description: restricted,
  tags,
  security,
  request: { params: ExternalIdParams },
  responses: { 200: { description: 'The active subscription', ...jsonContent(SubscriptionSchema) }, ...problemResponses(401, 403, 404) },
});
registry.registerPath({
  method: 'post',
  path: '/v1/subscriptions/{id}/cancel',
  summary: 'Cancel a subscription now (idempotent); its billing workflow closes the final period',
  description: `Requires \`billing:admin\`. ${restricted}`,
  tags,
  security,
  request: { params: IdParams },
  responses: {
    200: { description: 'The canceled subscription', ...jsonContent(SubscriptionSchema) },
    ...problemResponses(400, 401, 403, 404, 503),
  },
});

registry.registerPath({
  method: 'post',
  path: '/v1/subscriptions/{id}/change-plan',
  summary: 'Move a subscription to another plan (upgrade or downgrade), effective at once',
  description:
    'Requires `billing:admin`. The new limits apply immediately: a meter blocked at its hard limit is unblocked when the new ' +
    'limit allows its usage. The period is invoiced on the plan it has at its close (no proration). Repeating the request is safe. ' +
    restricted,
  tags,
  security,
  request: { params: IdParams, body: jsonContent(ChangePlanInputSchema) },
  responses: {
    200: { description: 'The subscription on its new plan', ...jsonContent(SubscriptionSchema) },
    ...problemResponses(400, 401, 403, 404, 409, 422, 503),
  },
});

/** The period holding `now`, or the first one while the start is still ahead. */
function currentPeriod(subscription: Subscription, now: Date): Period | null {
  if (subscription.status !== 'active') return null;
  return periodContaining(subscription.anchor, subscription.plan.interval, Math.max(now.getTime(), subscription.anchor.getTime()));
}

/** A subscription's wire shape at `now`; the admin CLI's --json prints the same. */
export function subscriptionToJson(s: Subscription, now: Date): z.infer<typeof SubscriptionSchema> {
  const period = currentPeriod(s, now);
  return {
    id: s.id,
    customer: s.customer.externalId,
    plan: s.plan.id,
    anchor: s.anchor.toISOString(),
    status: s.status,
    current_period: period && { start: period.start.toISOString(), end: period.end.toISOString() },
    cancel_at: s.cancelAt?.toISOString() ?? null,
    canceled_at: s.canceledAt?.toISOString() ?? null,
    created_at: s.createdAt.toISOString(),
  };
}

/** Another customer's subscription looks absent to a restricted key, not forbidden: its existence is not theirs to learn. */
function visible(access: Access, subscription: Subscription | undefined, id: string): Subscription {
  if (!subscription || !access.seesCustomerId(subscription.customer.id)) {
    throw new ProblemError('not_found', `No subscription ${id}.`);
  }
  return subscription;
}

const workflowStep = { started: 'started', canceled: 'told of the cancellation', planChanged: 'moved to the new plan' } as const;

export interface SubscriptionsRouterDeps {
  pool: Pool;
  clock: Clock;
  lifecycle: SubscriptionLifecycle;
}

export function subscriptionsRouter({ pool, clock, lifecycle }: SubscriptionsRouterDeps): Router {
  const router = Router();

  /**
   * Runs a lifecycle step after the commit. The database already holds the change, and the
   * step is idempotent, so the client is told to retry: the same request then converges.
   */
  const afterCommit = async (req: Request, subscription: Subscription, step: 'started' | 'canceled' | 'planChanged') => {
    try {
      await lifecycle[step](subscription);
    } catch (err) {
      req.log.error({ err, subscription: subscription.id }, `subscription lifecycle step "${step}" failed after commit`);
      throw new ProblemError(
        'unavailable',
        `Subscription ${subscription.id} is saved, but its billing workflow could not be ${workflowStep[step]}; retry the same request.`,
        { subscription: subscription.id },
      );
    }
  };

  router.post('/v1/subscriptions', authorize('subscriptions', 'create'), async (req, res) => {
    const input = parseRequest(SubscriptionInputSchema, req.body, 'body');
    const access = accessOf(req);
    const externalId = input.customer;
    const [customer, plan] = await Promise.all([
      access.seesCustomer(externalId) ? getCustomer(pool, externalId) : undefined,
      getPlan(pool, input.plan),
    ]);
    if (!customer) throw new ProblemError('unprocessable', `No customer "${externalId}".`, { reason: 'unknown_customer' });
    if (!plan) throw new ProblemError('unprocessable', `No plan "${input.plan}".`, { reason: 'unknown_plan' });
    if (plan.currency !== customer.currency) {
      throw new ProblemError(
        'unprocessable',
        `Customer "${externalId}" is billed in ${customer.currency}, plan "${plan.id}" in ${plan.currency}.`,
        {
          reason: 'currency_mismatch',
        },
      );
    }
    const anchor = input.start === undefined ? clock.now() : new Date(input.start);
    // Invoices store their period's end: the first period must end within the representable range.
    if (!isRepresentableInstant(periodAt(anchor, plan.interval, 0).end.getTime())) {
      throw new ProblemError(
        'unprocessable',
        `A subscription starting ${anchor.toISOString()} on plan "${plan.id}" would end its first period after 9999-12-31.`,
        {
          reason: 'start_out_of_range',
        },
      );
    }
    const result = await createSubscription(pool, { customerId: customer.id, planCode: plan.id, anchor, actor: access.actor });

    if (!result.created) {
      const { existing } = result;
      const sameRequest = existing.plan.id === plan.id && (input.start === undefined || existing.anchor.getTime() === anchor.getTime());
      if (!sameRequest) {
        throw new ProblemError(
          'conflict',
          `Customer "${externalId}" already has an active subscription; cancel it or change its plan.`,
          access.allows('subscriptions', 'get') ? { existing: subscriptionToJson(existing, clock.now()) } : {},
        );
      }
      await afterCommit(req, existing, 'started');
      res.status(200).json(subscriptionToJson(existing, clock.now()));
      return;
    }
    await afterCommit(req, result.subscription, 'started');
    res.status(201).location(`/v1/subscriptions/${result.subscription.id}`).json(subscriptionToJson(result.subscription, clock.now()));
  });

  router.get('/v1/subscriptions/:id', authorize('subscriptions', 'get'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    res.json(subscriptionToJson(visible(accessOf(req), await getSubscription(pool, id), id), clock.now()));
  });

  router.get('/v1/customers/:externalId/subscription', authorize('subscriptions', 'active'), async (req, res) => {
    const { externalId } = parseRequest(ExternalIdParams, req.params, 'params');
    const customer = accessOf(req).seesCustomer(externalId) ? await getCustomer(pool, externalId) : undefined;
    if (!customer) throw new ProblemError('not_found', `No customer "${externalId}".`);
    const subscription = await getActiveSubscription(pool, customer.id);
    if (!subscription) throw new ProblemError('not_found', `Customer "${externalId}" has no active subscription.`);
    res.json(subscriptionToJson(subscription, clock.now()));
  });

  router.post('/v1/subscriptions/:id/cancel', authorize('subscriptions', 'cancel'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    const access = accessOf(req);
    visible(access, await getSubscription(pool, id), id);
    const result = await cancelSubscription(pool, id, clock.now(), access.actor);
    if (!result) throw new ProblemError('not_found', `No subscription ${id}.`);
    // Also when it was already canceled: a retry after a failed step converges.
    await afterCommit(req, result.subscription, 'canceled');
    res.json(subscriptionToJson(result.subscription, clock.now()));
  });

  router.post('/v1/subscriptions/:id/change-plan', authorize('subscriptions', 'change_plan'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    const { plan } = parseRequest(ChangePlanInputSchema, req.body, 'body');
    const access = accessOf(req);
    visible(access, await getSubscription(pool, id), id);
    const result = await changePlan(pool, id, plan, access.actor, clock.now());
    if (result.outcome === 'refused') {
      const refusal = {
        subscription_not_found: () => new ProblemError('not_found', `No subscription ${id}.`),
        subscription_canceled: () => new ProblemError('conflict', `Subscription ${id} is canceled; subscribe the customer again instead.`),
        unknown_plan: () => new ProblemError('unprocessable', `No plan "${plan}".`, { reason: 'unknown_plan' }),
        currency_mismatch: () =>
          new ProblemError('unprocessable', `Plan "${plan}" is in another currency than subscription ${id}.`, {
            reason: 'currency_mismatch',
          }),
      }[result.reason];
      throw refusal();
    }
    // Also when unchanged: a retry after a failed step converges.
    await afterCommit(req, result.subscription, 'planChanged');
    res.json(subscriptionToJson(result.subscription, clock.now()));
  });

  return router;
}
