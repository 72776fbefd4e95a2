import { Router, type Request } from 'express';
import { z } from 'zod';
import type { Clock } from '../../clock';
import { Identifier, InstantSchema } from '../../domain/edge-schemas';
import type { Period } from '../../domain/periods';
import { PlanCodeSchema } from '../../domain/plan';
import { SpendThresholdsSchema } from '../../domain/spend-thresholds-schema';
import type { Result } from '../../domain/result';
import { SpendCapSchema } from '../../domain/spend-limit-schema';
import { changeEffects, isLifecycleStepFailed, type SubscriptionExists, type SubscriptionService } from '../../subscriptions/service';
import { billedPeriodAt, subscriptionStatuses, type Subscription } from '../../subscriptions/store';
import { accessOf, authorize, type Access } from '../authorization';
import { apiKeyAuth, jsonContent, problemResponses, registry } from '../openapi';
import { parseRequest } from '../problem';
import { problemFromRefusal, unwrap } from '../refusal';

export const SubscriptionInputSchema = z
  .strictObject({
    customer: Identifier.meta({ description: 'External id of the customer' }),
    plan: PlanCodeSchema.meta({ description: 'Code of the plan' }),
    start: InstantSchema.optional().meta({
      description:
        'The subscription start, when billing begins; default now. May be in the past or the future. It anchors every ' +
        'billing period unless `billing_anchor` is given.',
    }),
    billing_anchor: InstantSchema.optional().meta({
      description:
        'Periods are derived from this instant instead of the start (e.g. the 1st of a month for calendar billing). A start ' +
        'between two of its boundaries makes a first period [start, next boundary) whose base fee and minimum commitment ' +
        'are prorated like a cancellation’s (the plan’s `proration`); then full periods follow. Default: the start.',
    }),
    spend_thresholds: SpendThresholdsSchema.optional().meta({ description: 'Progressive billing; default none.' }),
    spend_cap: SpendCapSchema.nullable().optional().meta({ description: 'What one period of usage may cost; absent or null: no cap.' }),
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
    anchor: z.string().meta({ description: 'The subscription start: billing begins here' }),
    billing_anchor: z.string().meta({
      description: 'Every period boundary is one of this anchor’s; the start unless another was given',
    }),
    status: z.enum(subscriptionStatuses),
    current_period: PeriodSchema.nullable().meta({
      description:
        'The period in progress (the first one when the start is still ahead), beginning at the start in a first period cut short by a billing anchor; null once canceled.',
    }),
    cancel_at: z.string().nullable().meta({ description: 'When billing ends: the final period is cut short here' }),
    canceled_at: z.string().nullable().meta({ description: 'When the cancellation was recorded' }),
    spend_cap: SpendCapSchema.nullable().meta({ description: 'What one period of usage may cost; null: no cap' }),
    created_at: z.string(),
    spend_thresholds: z
      .object({ amounts: z.array(z.string()), every: z.string().nullable() })
      .meta({ description: 'Progressive billing: interim invoices when the open period’s priced usage reaches these.' }),
    pending_change: z
      .object({ plan: z.string(), effective_at: z.string() })
      .nullable()
      .meta({ description: 'A plan change scheduled for the end of the period (a downgrade by default), not yet in force' }),
  })
  .meta({ id: 'Subscription' });

const ChangePlanInputSchema = z
  .strictObject({
    plan: PlanCodeSchema.meta({ description: 'Code of the plan to move to' }),
    effective: z
      .enum(changeEffects)
      .optional()
      .meta({
        description:
          'When the change takes effect. Default: an upgrade `immediately`, a downgrade at `period_end`. An upgrade has the ' +
          'higher base fee or, with equal base fees, prices the usage of the period so far higher.',
      }),
  })
  .meta({ id: 'ChangePlanInput' });

const SpendCapInputSchema = z
  .strictObject({ spend_cap: SpendCapSchema.nullable().meta({ description: 'The new cap; null removes it' }) })
  .meta({ id: 'SpendCapInput' });

const IdParams = z.object({ id: z.uuid() });
const SpendThresholdsInputSchema = SpendThresholdsSchema.meta({ id: 'SpendThresholdsInput' });
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
    'request (same customer and plan, and the same start and billing anchor or none) returns the existing subscription with 200, so a retry is safe.',
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
  summary: 'Move a subscription to another plan: an upgrade at once, a downgrade at the period end',
  description:
    'Requires `billing:admin`. An immediate change applies the new limits at once (a meter blocked at its hard limit is ' +
    'unblocked when the new limit allows its usage) and splits the period: each segment is invoiced on its own plan, fixed ' +
    'fees prorated as each plan says. A change at `period_end` is shown as `pending_change` until the next period starts. ' +
    'Repeating the request is safe; a new request replaces a pending change. Plans must share currency and billing interval. ' +
    restricted,
  tags,
  security,
  request: { params: IdParams, body: jsonContent(ChangePlanInputSchema) },
  responses: {
    200: { description: 'The subscription on its new plan', ...jsonContent(SubscriptionSchema) },
    ...problemResponses(400, 401, 403, 404, 409, 422, 503),
  },
});

registry.registerPath({
  method: 'put',
  path: '/v1/subscriptions/{id}/spend-thresholds',
  summary: 'Replace the spend thresholds of a subscription (progressive billing)',
  description:
    'Requires `billing:admin`. When the open period’s priced usage (usage lines, without the base fee or minimum commitment) ' +
    'reaches a threshold, an interim invoice for the usage so far is finalized and charged; the period invoice bills the full ' +
    'period less what interim invoices billed. The open period is priced against the new thresholds at once. `{"amounts": [], ' +
    '"every": null}` turns progressive billing off. Repeating the request is safe. ' +
    restricted,
  tags,
  security,
  request: { params: IdParams, body: jsonContent(SpendThresholdsInputSchema) },
  responses: {
    200: { description: 'The subscription with its new thresholds', ...jsonContent(SubscriptionSchema) },
    ...problemResponses(400, 401, 403, 404, 409, 422, 503),
  },
});
registry.registerPath({
  method: 'post',
  path: '/v1/subscriptions/{id}/spend-cap',
  summary: 'Set or remove the spend cap of a subscription, effective at once',
  description:
    "Requires `billing:admin`. The cap is in the plan's currency per billing period. The billing workflow prices the open " +
    'period again at once: once priced usage reaches the cap (past its grace period), POST /v1/events refuses usage of the ' +
    "plan's charged meters with 402; raising or removing the cap lifts that. Repeating the request is safe. " +
    restricted,
  tags,
  security,
  request: { params: IdParams, body: jsonContent(SpendCapInputSchema) },
  responses: {
    200: { description: 'The subscription with its new spend cap', ...jsonContent(SubscriptionSchema) },
    ...problemResponses(400, 401, 403, 404, 409, 422, 503),
  },
});

/** The period holding `now`, or the first one while the start is still ahead. */
function currentPeriod(subscription: Subscription, now: Date): Period | null {
  if (subscription.status !== 'active') return null;
  return billedPeriodAt(subscription, now);
}

/** A subscription's wire shape at `now`; the admin CLI's --json prints the same. */
export function subscriptionToJson(s: Subscription, now: Date): z.infer<typeof SubscriptionSchema> {
  const period = currentPeriod(s, now);
  return {
    id: s.id,
    customer: s.customer.externalId,
    plan: s.plan.id,
    anchor: s.anchor.toISOString(),
    billing_anchor: s.billingAnchor.toISOString(),
    status: s.status,
    current_period: period && { start: period.start.toISOString(), end: period.end.toISOString() },
    cancel_at: s.cancelAt?.toISOString() ?? null,
    canceled_at: s.canceledAt?.toISOString() ?? null,
    spend_cap: s.spendCap,
    created_at: s.createdAt.toISOString(),
    spend_thresholds: s.spendThresholds,
    pending_change: s.pendingChange && { plan: s.pendingChange.toPlan, effective_at: s.pendingChange.effectiveAt.toISOString() },
  };
}

/** The subscription a 409 conflicts with is shown only to a key that could read it anyway. */
function conflictWith(access: Access, refusal: SubscriptionExists, now: Date) {
  const existing = access.allows('subscriptions', 'get') ? { existing: subscriptionToJson(refusal.details.existing, now) } : {};
  return problemFromRefusal({ ...refusal, details: existing });
}

/** The result's value; a lifecycle step that failed after the commit is logged before the client is told to retry. */
function settled<T>(req: Request, result: Result<T>): T {
  if (isLifecycleStepFailed(result)) {
    const { step, cause, details } = result;
    req.log.error({ err: cause, subscription: details.subscription }, `subscription lifecycle step "${step}" failed after commit`);
  }
  return unwrap(result);
}

export interface SubscriptionsRouterDeps {
  subscriptions: SubscriptionService;
  clock: Clock;
}

export function subscriptionsRouter({ subscriptions, clock }: SubscriptionsRouterDeps): Router {
  const router = Router();

  router.post('/v1/subscriptions', authorize('subscriptions', 'create'), async (req, res) => {
    const input = parseRequest(SubscriptionInputSchema, req.body, 'body');
    const access = accessOf(req);
    const start = input.start === undefined ? undefined : new Date(input.start);
    const result = await subscriptions.subscribe(access.principal, {
      customer: input.customer,
      plan: input.plan,
      start,
      ...(input.billing_anchor === undefined ? {} : { billingAnchor: new Date(input.billing_anchor) }),
      ...(input.spend_thresholds ? { spendThresholds: input.spend_thresholds } : {}),
      ...(input.spend_cap === undefined ? {} : { spendCap: input.spend_cap }),
    });
    if (!result.ok && result.reason === 'subscription_exists') throw conflictWith(access, result, clock.now());
    const { created, subscription } = settled(req, result);
    if (created) res.status(201).location(`/v1/subscriptions/${subscription.id}`);
    res.json(subscriptionToJson(subscription, clock.now()));
  });

  router.get('/v1/subscriptions/:id', authorize('subscriptions', 'get'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    res.json(subscriptionToJson(unwrap(await subscriptions.get(accessOf(req).principal, id)), clock.now()));
  });

  router.get('/v1/customers/:externalId/subscription', authorize('subscriptions', 'active'), async (req, res) => {
    const { externalId } = parseRequest(ExternalIdParams, req.params, 'params');
    res.json(subscriptionToJson(unwrap(await subscriptions.active(accessOf(req).principal, externalId)), clock.now()));
  });

  router.post('/v1/subscriptions/:id/cancel', authorize('subscriptions', 'cancel'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    const { subscription } = settled(req, await subscriptions.cancel(accessOf(req).principal, id));
    res.json(subscriptionToJson(subscription, clock.now()));
  });

  router.post('/v1/subscriptions/:id/change-plan', authorize('subscriptions', 'change_plan'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    const { plan, effective } = parseRequest(ChangePlanInputSchema, req.body, 'body');
    const { subscription } = settled(req, await subscriptions.changePlan(accessOf(req).principal, id, plan, effective));
    res.json(subscriptionToJson(subscription, clock.now()));
  });

  router.put('/v1/subscriptions/:id/spend-thresholds', authorize('subscriptions', 'set_spend_thresholds'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    const thresholds = parseRequest(SpendThresholdsInputSchema, req.body, 'body');
    const { subscription } = settled(req, await subscriptions.changeSpendThresholds(accessOf(req).principal, id, thresholds));
    res.json(subscriptionToJson(subscription, clock.now()));
  });

  router.post('/v1/subscriptions/:id/spend-cap', authorize('subscriptions', 'set_spend_cap'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    const { spend_cap } = parseRequest(SpendCapInputSchema, req.body, 'body');
    const { subscription } = settled(req, await subscriptions.setSpendCap(accessOf(req).principal, id, spend_cap));
    res.json(subscriptionToJson(subscription, clock.now()));
  });

  return router;
}
