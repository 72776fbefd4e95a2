import { Router } from 'express';
import { z } from 'zod';
import { PlanCodeSchema, PlanSchema } from '../../domain/plan';
import type { PlanService } from '../../plans/service';
import { planTerms, type StoredPlan } from '../../plans/store';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, jsonContent, problemResponses, registry } from '../openapi';
import { page, pageSchema, PageQuerySchema } from '../pagination';
import { parseRequest } from '../problem';
import { problemFromRefusal, unwrap } from '../refusal';

const StoredPlanSchema = z.object({ ...PlanSchema.shape, created_at: z.string() }).meta({ id: 'StoredPlan' });

const CodeParams = z.object({ code: PlanCodeSchema });

const security = [{ [apiKeyAuth.name]: [] }];
const tags = ['plans'];

registry.registerPath({
  method: 'post',
  path: '/v1/plans',
  summary: 'Create a plan (idempotent on identical input; a plan never changes afterwards)',
  description:
    'Requires `billing:admin` and a key not restricted to a customer. Every charge and limit must name a defined meter. ' +
    'To change prices, create a plan with a new code and move subscriptions to it.',
  tags,
  security,
  request: { body: jsonContent(PlanSchema) },
  responses: {
    201: { description: 'Created', ...jsonContent(StoredPlanSchema) },
    200: { description: 'Already exists, identical', ...jsonContent(StoredPlanSchema) },
    ...problemResponses(400, 401, 403, 409),
  },
});
registry.registerPath({
  method: 'get',
  path: '/v1/plans/{code}',
  summary: 'Get a plan',
  tags,
  security,
  request: { params: CodeParams },
  responses: { 200: { description: 'The plan', ...jsonContent(StoredPlanSchema) }, ...problemResponses(400, 401, 403, 404) },
});
registry.registerPath({
  method: 'get',
  path: '/v1/plans',
  summary: 'List plans by code',
  tags,
  security,
  request: { query: PageQuerySchema },
  responses: { 200: { description: 'A page of plans', ...jsonContent(pageSchema(StoredPlanSchema)) }, ...problemResponses(400, 401, 403) },
});

/** A plan's wire shape; the admin CLI's --json prints the same. */
export const planToJson = (plan: StoredPlan): z.infer<typeof StoredPlanSchema> => ({
  ...planTerms(plan),
  created_at: plan.createdAt.toISOString(),
});

export function plansRouter({ plans }: { plans: PlanService }): Router {
  const router = Router();

  router.post('/v1/plans', authorize('plans', 'create'), async (req, res) => {
    const access = accessOf(req);
    const input = parseRequest(await plans.inputSchema(), req.body, 'body');
    const result = await plans.create(access.principal, input);
    if (!result.ok) {
      // The plan the request conflicts with is shown only to a key that could read it anyway.
      const existing = access.allows('plans', 'get') ? { existing: planToJson(result.details.existing) } : {};
      throw problemFromRefusal({ ...result, details: existing });
    }
    const { created, plan } = result.value;
    if (created) res.status(201).location(`/v1/plans/${plan.id}`);
    res.json(planToJson(plan));
  });

  router.get('/v1/plans/:code', authorize('plans', 'get'), async (req, res) => {
    const { code } = parseRequest(CodeParams, req.params, 'params');
    res.json(planToJson(unwrap(await plans.get(code))));
  });

  router.get('/v1/plans', authorize('plans', 'list'), async (req, res) => {
    const query = parseRequest(PageQuerySchema, req.query, 'query');
    const result = page(await plans.list(query.limit + 1, query.after), query.limit, (plan) => plan.id);
    res.json({ data: result.data.map(planToJson), next_cursor: result.next_cursor });
  });

  return router;
}
