import { Router } from 'express';
import { z } from 'zod';
import type { CouponService } from '../../coupons/service';
import { couponTerms, type CouponApplication, type StoredCoupon } from '../../coupons/store';
import { CouponCodeSchema, CouponSchema } from '../../domain/discounts';
import { Identifier } from '../../domain/edge-schemas';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, jsonContent, problemResponses, registry } from '../openapi';
import { page, pageSchema, PageQuerySchema } from '../pagination';
import { parseRequest } from '../problem';
import { problemFromRefusal, unwrap } from '../refusal';

const StoredCouponSchema = z.object({ ...CouponSchema.shape, created_at: z.string() }).meta({ id: 'StoredCoupon' });

export const ApplyCouponSchema = z
  .strictObject({
    coupon: CouponCodeSchema,
    subscription_id: z.uuid().nullable().default(null).meta({ description: 'Only this subscription of the customer; null: all of them.' }),
  })
  .meta({ id: 'ApplyCouponInput' });

const CouponApplicationSchema = z
  .object({
    id: z.uuid(),
    coupon: StoredCouponSchema,
    customer: z.string().meta({ description: 'External id of the customer' }),
    subscription_id: z.uuid().nullable(),
    periods_used: z.number().int().meta({ description: 'Finalized, not void, invoices it has discounted' }),
    periods_reserved: z.number().int().meta({ description: 'Draft invoices discounting with it: each uses a period when finalized' }),
    created_at: z.string(),
  })
  .meta({ id: 'CouponApplication' });

const CodeParams = z.object({ code: CouponCodeSchema });
const CustomerParams = z.object({ externalId: Identifier });

const security = [{ [apiKeyAuth.name]: [] }];
const tags = ['coupons'];
const admin = 'Requires `billing:admin` and a key not restricted to a customer.';

registry.registerPath({
  method: 'post',
  path: '/v1/coupons',
  summary: 'Create a coupon (idempotent on identical input; a coupon never changes afterwards)',
  description: `${admin} A percentage or a fixed amount off, once, for N periods or forever, optionally on some meters only.`,
  tags,
  security,
  request: { body: jsonContent(CouponSchema) },
  responses: {
    201: { description: 'Created', ...jsonContent(StoredCouponSchema) },
    200: { description: 'Already exists, identical', ...jsonContent(StoredCouponSchema) },
    ...problemResponses(400, 401, 403, 409, 422),
  },
});
registry.registerPath({
  method: 'get',
  path: '/v1/coupons/{code}',
  summary: 'Get a coupon',
  description: 'Requires `billing:read` and a key not restricted to a customer.',
  tags,
  security,
  request: { params: CodeParams },
  responses: { 200: { description: 'The coupon', ...jsonContent(StoredCouponSchema) }, ...problemResponses(400, 401, 403, 404) },
});
registry.registerPath({
  method: 'get',
  path: '/v1/coupons',
  summary: 'List coupons by code',
  description: 'Requires `billing:read` and a key not restricted to a customer.',
  tags,
  security,
  request: { query: PageQuerySchema },
  responses: {
    200: { description: 'A page of coupons', ...jsonContent(pageSchema(StoredCouponSchema)) },
    ...problemResponses(400, 401, 403),
  },
});
registry.registerPath({
  method: 'post',
  path: '/v1/customers/{externalId}/coupons',
  summary: 'Apply a coupon to a customer, or to one of its subscriptions (idempotent)',
  description:
    `${admin} The coupon discounts the customer's next invoices for its duration; a period is used when an invoice it ` +
    "discounted is finalized. A fixed amount must be in the customer's currency (422 `currency_mismatch`).",
  tags,
  security,
  request: { params: CustomerParams, body: jsonContent(ApplyCouponSchema) },
  responses: {
    201: { description: 'Applied', ...jsonContent(CouponApplicationSchema) },
    200: { description: 'Already applied', ...jsonContent(CouponApplicationSchema) },
    ...problemResponses(400, 401, 403, 404, 422),
  },
});
registry.registerPath({
  method: 'get',
  path: '/v1/customers/{externalId}/coupons',
  summary: "A customer's coupon applications, with the periods each has used",
  description: "Requires `billing:read`. A key restricted to a customer sees only that customer's.",
  tags,
  security,
  request: { params: CustomerParams },
  responses: {
    200: { description: 'The applications, oldest first', ...jsonContent(z.object({ data: z.array(CouponApplicationSchema) })) },
    ...problemResponses(400, 401, 403, 404),
  },
});

/** A coupon's wire shape; the admin CLI's --json prints the same. */
export const couponToJson = (coupon: StoredCoupon): z.infer<typeof StoredCouponSchema> => ({
  ...couponTerms(coupon),
  created_at: coupon.createdAt.toISOString(),
});

export const couponApplicationToJson = (a: CouponApplication, customer: string): z.infer<typeof CouponApplicationSchema> => ({
  id: a.id,
  coupon: couponToJson(a.coupon),
  customer,
  subscription_id: a.subscriptionId,
  periods_used: a.periodsUsed,
  periods_reserved: a.periodsReserved,
  created_at: a.createdAt.toISOString(),
});

export function couponsRouter(coupons: CouponService): Router {
  const router = Router();

  router.post('/v1/coupons', authorize('coupons', 'create'), async (req, res) => {
    const input = parseRequest(CouponSchema, req.body, 'body');
    const access = accessOf(req);
    const result = await coupons.create(access.principal, input);
    if (!result.ok) {
      // The coupon the request conflicts with is shown only to a key that could read it anyway.
      const shown = result.reason === 'coupon_exists' && access.allows('coupons', 'get');
      throw problemFromRefusal({ ...result, details: shown ? { existing: couponToJson(result.details.existing) } : {} });
    }
    const { created, coupon } = result.value;
    if (created) res.status(201).location(`/v1/coupons/${coupon.code}`);
    res.json(couponToJson(coupon));
  });

  router.get('/v1/coupons/:code', authorize('coupons', 'get'), async (req, res) => {
    const { code } = parseRequest(CodeParams, req.params, 'params');
    res.json(couponToJson(unwrap(await coupons.get(code))));
  });

  router.get('/v1/coupons', authorize('coupons', 'list'), async (req, res) => {
    const query = parseRequest(PageQuerySchema, req.query, 'query');
    const result = page(await coupons.list(query.limit + 1, query.after), query.limit, (coupon) => coupon.code);
    res.json({ data: result.data.map(couponToJson), next_cursor: result.next_cursor });
  });

  router.post('/v1/customers/:externalId/coupons', authorize('coupons', 'apply'), async (req, res) => {
    const { externalId } = parseRequest(CustomerParams, req.params, 'params');
    const input = parseRequest(ApplyCouponSchema, req.body, 'body');
    const { created, application } = unwrap(
      await coupons.apply(accessOf(req).principal, externalId, { coupon: input.coupon, subscriptionId: input.subscription_id }),
    );
    res.status(created ? 201 : 200).json(couponApplicationToJson(application, externalId));
  });

  router.get('/v1/customers/:externalId/coupons', authorize('coupons', 'applications'), async (req, res) => {
    const { externalId } = parseRequest(CustomerParams, req.params, 'params');
    const applications = unwrap(await coupons.applications(accessOf(req).principal, externalId));
    res.json({ data: applications.map((a) => couponApplicationToJson(a, externalId)) });
  });

  return router;
}
