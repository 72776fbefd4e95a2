import { Router } from 'express';
import { z } from 'zod';
import { Identifier, text } from '../../domain/edge-schemas';
import type { CustomerService } from '../../customers/service';
import type { Customer } from '../../customers/store';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, problemResponses, registry } from '../openapi';
import { page, pageSchema, PageQuerySchema } from '../pagination';
import { parseRequest } from '../problem';
import { problemFromRefusal, unwrap } from '../refusal';

/** What a customer is made of; the admin CLI validates with it too, so both refuse the same input. */
export const CustomerInputSchema = z
  .object({
    external_id: Identifier.meta({ description: 'Your id for the customer' }),
    name: text({ max: 256 }),
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, 'an ISO 4217 code such as USD')
      .meta({ example: 'USD' }),
  })
  .strict()
  .meta({ id: 'CustomerInput' });

const CustomerSchema = z
  .object({ external_id: z.string(), name: z.string(), currency: z.string(), created_at: z.string() })
  .meta({ id: 'Customer' });

const ExternalIdParams = z.object({ externalId: Identifier });

const security = [{ [apiKeyAuth.name]: [] }];
registry.registerPath({
  method: 'post',
  path: '/v1/customers',
  summary: 'Create a customer (idempotent on external_id)',
  tags: ['customers'],
  security,
  request: { body: { content: { 'application/json': { schema: CustomerInputSchema } } } },
  responses: {
    201: { description: 'Created', content: { 'application/json': { schema: CustomerSchema } } },
    200: { description: 'Already exists with the same attributes', content: { 'application/json': { schema: CustomerSchema } } },
    ...problemResponses(400, 401, 403, 409),
  },
});
registry.registerPath({
  method: 'get',
  path: '/v1/customers/{externalId}',
  summary: 'Get a customer',
  tags: ['customers'],
  security,
  request: { params: ExternalIdParams },
  responses: {
    200: { description: 'The customer', content: { 'application/json': { schema: CustomerSchema } } },
    ...problemResponses(401, 403, 404),
  },
});
registry.registerPath({
  method: 'get',
  path: '/v1/customers',
  summary: 'List customers by external id',
  tags: ['customers'],
  security,
  request: { query: PageQuerySchema },
  responses: {
    200: { description: 'A page of customers', content: { 'application/json': { schema: pageSchema(CustomerSchema) } } },
    ...problemResponses(400, 401, 403),
  },
});

/** A customer's wire shape; the admin CLI's --json prints the same. */
export const customerToJson = (c: Customer) => ({
  external_id: c.externalId,
  name: c.name,
  currency: c.currency,
  created_at: c.createdAt.toISOString(),
});

export function customersRouter(customers: CustomerService): Router {
  const router = Router();

  router.post('/v1/customers', authorize('customers', 'create'), async (req, res) => {
    const input = parseRequest(CustomerInputSchema, req.body, 'body');
    const access = accessOf(req);
    const result = await customers.create(access.principal, input);
    if (!result.ok) {
      // The existing customer is shown only to a key that could read it anyway.
      const { existing } = result.details;
      throw problemFromRefusal({ ...result, details: access.allows('customers', 'get') ? { existing: customerToJson(existing) } : {} });
    }
    const { created, customer } = result.value;
    res
      .status(created ? 201 : 200)
      .location(`/v1/customers/${encodeURIComponent(customer.externalId)}`)
      .json(customerToJson(customer));
  });

  router.get('/v1/customers/:externalId', authorize('customers', 'get'), async (req, res) => {
    const { externalId } = parseRequest(ExternalIdParams, req.params, 'params');
    res.json(customerToJson(unwrap(await customers.get(accessOf(req).principal, externalId))));
  });

  router.get('/v1/customers', authorize('customers', 'list'), async (req, res) => {
    const query = parseRequest(PageQuerySchema, req.query, 'query');
    const rows = await customers.list(query.limit + 1, query.after);
    const result = page(rows, query.limit, (c) => c.externalId);
    res.json({ data: result.data.map(customerToJson), next_cursor: result.next_cursor });
  });

  return router;
}
