import { Router } from 'express';
import { z } from 'zod';
import { PricedPlanSchema, PricePlanSchema, UsageSchema, pricePlan, unpricedMeters } from '../../domain/pricing';
import { authorize } from '../authorization';
import { apiKeyAuth, problemResponses, registry } from '../openapi';
import { parseRequest } from '../problem';

export const PricingPreviewRequestSchema = z
  .strictObject({ plan: PricePlanSchema, usage: UsageSchema })
  .superRefine(({ plan, usage }, ctx) => {
    for (const meter of unpricedMeters(plan, usage)) {
      ctx.addIssue({
        code: 'custom',
        path: ['usage', meter],
        message: `unknown meter ${JSON.stringify(meter)}: the plan has no charge for it`,
      });
    }
  })
  .meta({ id: 'PricingPreviewRequest', description: 'An inline plan and usage per meter for one period.' });

registry.registerPath({
  method: 'post',
  path: '/v1/pricing/preview',
  summary: 'Price usage under a plan, line by line, without side effects',
  tags: ['pricing'],
  security: [{ [apiKeyAuth.name]: [] }],
  request: { body: { content: { 'application/json': { schema: PricingPreviewRequestSchema } } } },
  responses: {
    200: { description: 'Lines with their breakdown, and totals', content: { 'application/json': { schema: PricedPlanSchema } } },
    ...problemResponses(400, 401, 403),
  },
});

export const pricingRouter = Router();

pricingRouter.post('/v1/pricing/preview', authorize('pricing', 'preview'), (req, res) => {
  const { plan, usage } = parseRequest(PricingPreviewRequestSchema, req.body, 'body');
  res.json(pricePlan(plan, usage));
});
