import { Router } from 'express';
import { z } from 'zod';
import { Identifier } from '../../domain/edge-schemas';
import { TaxCodeSchema, TaxRateSchema } from '../../domain/taxes';
import type { TaxRateService } from '../../taxes/service';
import type { StoredTaxRate } from '../../taxes/store';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, jsonContent, problemResponses, registry } from '../openapi';
import { parseRequest } from '../problem';
import { unwrap } from '../refusal';

const StoredTaxRateSchema = z
  .object({
    id: z.uuid(),
    customer: z.string().meta({ description: 'External id of the customer' }),
    code: z.string(),
    name: z.string(),
    percentage: z.string(),
    inclusive: z.boolean(),
    meter: z.string().nullable(),
    base_fee: z.boolean().meta({ description: 'Only the base fee and the minimum-commitment true-up are taxed' }),
    created_at: z.string(),
    archived_at: z.string().nullable(),
  })
  .meta({ id: 'StoredTaxRate' });

const CustomerParams = z.object({ externalId: Identifier });
const RateParams = z.object({ externalId: Identifier, code: TaxCodeSchema });

const security = [{ [apiKeyAuth.name]: [] }];
const tags = ['tax rates'];
const admin = 'Requires `billing:admin` and a key not restricted to a customer.';

registry.registerPath({
  method: 'post',
  path: '/v1/customers/{externalId}/tax-rates',
  summary: 'Add a tax rate to a customer (idempotent on identical input)',
  description:
    `${admin} On the whole invoice, or on one meter's usage (\`meter\`). Rates stack simply: each is a percentage of the ` +
    "same net amount. A customer's rates are all exclusive or all inclusive (409 `tax_mode_conflict`). A rate never " +
    'changes: archive it and add another. Invoices drafted from then on apply it.',
  tags,
  security,
  request: { params: CustomerParams, body: jsonContent(TaxRateSchema) },
  responses: {
    201: { description: 'Added', ...jsonContent(StoredTaxRateSchema) },
    200: { description: 'Already active with the same terms', ...jsonContent(StoredTaxRateSchema) },
    ...problemResponses(400, 401, 403, 404, 409, 422),
  },
});
registry.registerPath({
  method: 'get',
  path: '/v1/customers/{externalId}/tax-rates',
  summary: "A customer's active tax rates, in the order of their invoice lines",
  description: "Requires `billing:read`. A key restricted to a customer sees only that customer's.",
  tags,
  security,
  request: { params: CustomerParams },
  responses: {
    200: { description: 'The active rates', ...jsonContent(z.object({ data: z.array(StoredTaxRateSchema) })) },
    ...problemResponses(400, 401, 403, 404),
  },
});
registry.registerPath({
  method: 'post',
  path: '/v1/customers/{externalId}/tax-rates/{code}/archive',
  summary: 'Archive a tax rate: invoices drafted from then on no longer apply it',
  description: `${admin} Finalized invoices keep the rate they were taxed with.`,
  tags,
  security,
  request: { params: RateParams },
  responses: { 200: { description: 'The archived rate', ...jsonContent(StoredTaxRateSchema) }, ...problemResponses(400, 401, 403, 404) },
});

/** A tax rate's wire shape; the admin CLI's --json prints the same. */
export const taxRateToJson = (rate: StoredTaxRate, customer: string): z.infer<typeof StoredTaxRateSchema> => ({
  id: rate.id,
  customer,
  code: rate.code,
  name: rate.name,
  percentage: rate.percentage,
  inclusive: rate.inclusive,
  meter: rate.meter,
  base_fee: rate.base_fee,
  created_at: rate.createdAt.toISOString(),
  archived_at: rate.archivedAt?.toISOString() ?? null,
});

export function taxRatesRouter(taxRates: TaxRateService): Router {
  const router = Router();

  router.post('/v1/customers/:externalId/tax-rates', authorize('tax_rates', 'create'), async (req, res) => {
    const { externalId } = parseRequest(CustomerParams, req.params, 'params');
    const input = parseRequest(TaxRateSchema, req.body, 'body');
    const { created, rate } = unwrap(await taxRates.create(accessOf(req).principal, externalId, input));
    res.status(created ? 201 : 200).json(taxRateToJson(rate, externalId));
  });

  router.get('/v1/customers/:externalId/tax-rates', authorize('tax_rates', 'list'), async (req, res) => {
    const { externalId } = parseRequest(CustomerParams, req.params, 'params');
    const rates = unwrap(await taxRates.list(accessOf(req).principal, externalId));
    res.json({ data: rates.map((r) => taxRateToJson(r, externalId)) });
  });

  router.post('/v1/customers/:externalId/tax-rates/:code/archive', authorize('tax_rates', 'archive'), async (req, res) => {
    const { externalId, code } = parseRequest(RateParams, req.params, 'params');
    res.json(taxRateToJson(unwrap(await taxRates.archive(accessOf(req).principal, externalId, code)), externalId));
  });

  return router;
}
