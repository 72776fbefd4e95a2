import { Router } from 'express';
import { z } from 'zod';
import { createPlan, getPlan, listPlans, type StoredPlan } from '../../billing/plan-store';
import type { Pool } from '../../db/pool';
import { canonicalJson } from '../../domain/metering/canonical-json';
import { PlanCodeSchema, PlanSchema, planSchema, type Plan } from '../../domain/plan';
import { allMeters } from '../../meters/store';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, jsonContent, problemResponses, registry } from '../openapi';
import { page, pageSchema, PageQuerySchema } from '../pagination';
import { ProblemError, problemFromZod } from '../problem';

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

/** A stored plan's terms, as created (what an identical retry is compared with). */
export const termsOf = ({ createdAt: _createdAt, ...plan }: StoredPlan): Plan => plan;
/** A plan's wire shape; the admin CLI's --json prints the same. */
export const planToJson = (plan: StoredPlan): z.infer<typeof StoredPlanSchema> => ({
  ...termsOf(plan),
  created_at: plan.createdAt.toISOString(),
});

export function plansRouter({ pool }: { pool: Pool }): Router {
  const router = Router();

  router.post('/v1/plans', authorize('plans', 'create'), async (req, res) => {
    const access = accessOf(req);
    const knownMeters = new Set((await allMeters(pool)).map((meter) => meter.code));
    const parsed = planSchema({ knownMeters }).safeParse(req.body);
    if (!parsed.success) throw problemFromZod(parsed.error);
    const result = await createPlan(pool, parsed.data, access.actor);
    if (result.created) {
      res.status(201).location(`/v1/plans/${result.plan.id}`).json(planToJson(result.plan));
      return;
    }
    // jsonb reorders object keys, so the terms are compared in canonical form.
    if (canonicalJson(termsOf(result.existing)) === canonicalJson(parsed.data)) {
      res.status(200).json(planToJson(result.existing));
      return;
    }
    throw new ProblemError(
      'conflict',
      `Plan "${parsed.data.id}" already exists with other terms; plans never change: create the new terms under a new code.`,
      access.allows('plans', 'get') ? { existing: planToJson(result.existing) } : {},
    );
  });

  router.get('/v1/plans/:code', authorize('plans', 'get'), async (req, res) => {
    const params = CodeParams.safeParse(req.params);
    if (!params.success) throw problemFromZod(params.error, 'params');
    const plan = await getPlan(pool, params.data.code);
    if (!plan) throw new ProblemError('not_found', `No plan "${params.data.code}".`);
    res.json(planToJson(plan));
  });

  router.get('/v1/plans', authorize('plans', 'list'), async (req, res) => {
    const query = PageQuerySchema.safeParse(req.query);
    if (!query.success) throw problemFromZod(query.error, 'query');
    const rows = await listPlans(pool, query.data.limit + 1, query.data.after);
    const result = page(rows, query.data.limit, (plan) => plan.id);
    res.json({ data: result.data.map(planToJson), next_cursor: result.next_cursor });
  });

  return router;
}
