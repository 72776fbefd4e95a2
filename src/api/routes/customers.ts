import { Router } from 'express';
import { z } from 'zod';
import type { Pool } from '../../db/pool';
import { Identifier, text } from '../../domain/edge-schemas';
import type { CustomerDirectory } from '../../customers/directory';
import { createCustomer, getCustomer, listCustomers, type Customer } from '../../customers/store';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, problemResponses, registry } from '../openapi';
import { page, pageSchema, PageQuerySchema } from '../pagination';
import { ProblemError, parseRequest, problemFromZod } from '../problem';

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

export function customersRouter(pool: Pool, directory: CustomerDirectory): Router {
  const router = Router();

  router.post('/v1/customers', authorize('customers', 'create'), async (req, res) => {
    const parsed = CustomerInputSchema.safeParse(req.body);
    if (!parsed.success) throw problemFromZod(parsed.error);
    const access = accessOf(req);
    const { created, customer } = await createCustomer(pool, parsed.data, access.actor);
    directory.add(customer.externalId, customer.id);
    if (!created && (customer.name !== parsed.data.name || customer.currency !== parsed.data.currency)) {
      // The existing customer is shown only to a key that could read it anyway.
      throw new ProblemError(
        'conflict',
        `Customer "${parsed.data.external_id}" already exists with other attributes.`,
        access.allows('customers', 'get') ? { existing: customerToJson(customer) } : {},
      );
    }
    res
      .status(created ? 201 : 200)
      .location(`/v1/customers/${encodeURIComponent(customer.externalId)}`)
      .json(customerToJson(customer));
  });

  router.get('/v1/customers/:externalId', authorize('customers', 'get'), async (req, res) => {
    const { externalId } = parseRequest(ExternalIdParams, req.params, 'params');
    const customer = accessOf(req).seesCustomer(externalId) ? await getCustomer(pool, externalId) : undefined;
    if (!customer) throw new ProblemError('not_found', `No customer "${externalId}".`);
    res.json(customerToJson(customer));
  });

  router.get('/v1/customers', authorize('customers', 'list'), async (req, res) => {
    const query = PageQuerySchema.safeParse(req.query);
    if (!query.success) throw problemFromZod(query.error, 'query');
    const rows = await listCustomers(pool, query.data.limit + 1, query.data.after);
    const result = page(rows, query.data.limit, (c) => c.externalId);
    res.json({ data: result.data.map(customerToJson), next_cursor: result.next_cursor });
  });

  return router;
}
