import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { assertUniqueSchemaIds, buildOpenApiDocument, jsonContent } from '../../src/api/openapi';
import { planToJson } from '../../src/api/routes/plans';
import { PlanSchema } from '../../src/domain/plan';
import { OpenApiContract, type Exchange } from '../support/openapi-contract';

// The contract module loads every router, so this is the whole document /openapi.json serves.
const document = buildOpenApiDocument();
const contract = new OpenApiContract(document);

const json = (status: number, method: string, url: string, body: unknown, headers: Exchange['headers'] = {}): Exchange => ({
  method,
  url,
  status,
  headers: { 'content-type': status >= 400 ? 'application/problem+json; charset=utf-8' : 'application/json; charset=utf-8', ...headers },
  body: Buffer.from(JSON.stringify(body)),
});
const problem = (status: number) => ({ type: '/problems/x', title: 'x', status, detail: 'x' });

const operations = Object.entries(document.paths ?? {}).flatMap(([path, item]) =>
  (['get', 'post', 'patch', 'put', 'delete'] as const).flatMap((method) => {
    const op = item[method];
    return op
      ? [
          {
            name: `${method.toUpperCase()} ${path}`,
            op,
            responses: op.responses as Record<string, { headers?: Record<string, { required?: boolean }> }>,
          },
        ]
      : [];
  }),
);

describe('component schema ids', () => {
  test('two different schemas under one id are refused', () => {
    const registry = new OpenAPIRegistry();
    const a = z.object({ amount: z.string() }).meta({ id: 'Thing' });
    const b = z.object({ quantity: z.number() }).meta({ id: 'Thing' });
    registry.registerPath({
      method: 'get',
      path: '/a',
      responses: { 200: { description: 'a', ...jsonContent(z.object({ items: z.array(a) })) } },
    });
    registry.registerPath({ method: 'get', path: '/b', responses: { 200: { description: 'b', ...jsonContent(b.nullable()) } } });
    assert.throws(() => assertUniqueSchemaIds(registry.definitions), /schema id "Thing" is given to two different schemas/);
  });

  test('one schema used in many places, and a lazy recursive schema, are fine', () => {
    const registry = new OpenAPIRegistry();
    const shared = z.object({ amount: z.string() }).meta({ id: 'Shared' });
    const tree: z.ZodType = z.lazy(() => z.object({ value: shared, children: z.array(tree) })).meta({ id: 'Tree' });
    registry.registerPath({ method: 'get', path: '/a', responses: { 200: { description: 'a', ...jsonContent(shared) } } });
    registry.registerPath({ method: 'get', path: '/b', responses: { 200: { description: 'b', ...jsonContent(z.array(tree)) } } });
    assert.doesNotThrow(() => assertUniqueSchemaIds(registry.definitions));
  });

  test('the plan charge and the invoice charge, the two usages, are separate components', () => {
    const schemas = document.components?.schemas ?? {};
    for (const id of ['PlanCharge', 'InvoiceCharge', 'UsageByMeter', 'MeterUsage']) assert.ok(schemas[id], id);
    assert.equal(schemas.Charge, undefined);
    assert.equal(schemas.Usage, undefined);
  });
});

describe('statuses every operation of a kind returns', () => {
  test('every operation behind an API key documents 401 with its challenge and 429 with Retry-After', () => {
    const secured = operations.filter(({ op }) => op.security?.length);
    assert.ok(secured.length >= 37, `only ${secured.length} secured operations`);
    for (const { name, responses } of secured) {
      assert.ok(responses['401']?.headers?.['WWW-Authenticate']?.required, `${name}: 401`);
      // A quota refusal names no retry time when the reset is unknown: ingest says so itself.
      assert.equal(responses['429']?.headers?.['Retry-After']?.required, name !== 'POST /v1/events', `${name}: 429`);
    }
  });

  test('every operation with a body documents 400, 413 and 415; with path or query parameters, 400', () => {
    for (const { name, op, responses } of operations) {
      if (op.requestBody) for (const s of ['400', '413', '415']) assert.ok(responses[s], `${name}: ${s}`);
      if (op.parameters?.length) assert.ok(responses['400'], `${name}: 400`);
    }
  });
});

describe('checking a response against the document', () => {
  const plan = planToJson({
    ...PlanSchema.parse({
      id: 'pro',
      name: 'Pro',
      currency: 'USD',
      charges: [{ meter: 'calls', model: 'per_unit', unit_price: '0.01' }],
      interval: { kind: 'calendar_month' },
    }),
    createdAt: new Date(0),
  });

  test('a response as documented passes', () => {
    assert.deepEqual(contract.violations(json(200, 'GET', '/v1/plans?limit=1', { data: [plan], next_cursor: null })), []);
    assert.deepEqual(contract.violations(json(429, 'GET', '/v1/plans', problem(429), { 'retry-after': '1' })), []);
  });

  test('a body of another shape, an undocumented status, content type or missing header fails', () => {
    const invoiceCharge = { amount: '1.00', currency: 'USD', status: 'pending', provider_charge_id: null, attempts: [] };
    const wrongCharge = { ...plan, charges: [invoiceCharge] };
    assert.match(
      contract.violations(json(200, 'GET', '/v1/plans', { data: [wrongCharge], next_cursor: null })).join(),
      /does not match the documented schema/,
    );
    assert.match(contract.violations(json(418, 'GET', '/v1/plans', problem(418))).join(), /status not documented/);
    assert.match(
      contract
        .violations({ ...json(200, 'GET', '/v1/plans', { data: [], next_cursor: null }), headers: { 'content-type': 'text/html' } })
        .join(),
      /content type text\/html is not documented/,
    );
    assert.match(contract.violations(json(429, 'GET', '/v1/plans', problem(429))).join(), /required header Retry-After is missing/);
  });

  test('the most specific path template is matched: /v1/keys/current before /v1/keys/{id}', () => {
    const current = { id: '00000000-0000-4000-8000-000000000000', environment: 'test', scopes: ['usage:read'], customer: null };
    assert.deepEqual(contract.violations(json(200, 'GET', '/v1/keys/current', current)), []);
  });

  test('outside the documented operations only the catch-all 404 and refusals before routing pass', () => {
    assert.deepEqual(contract.violations(json(404, 'GET', '/v1/nothing-here', problem(404))), []);
    assert.deepEqual(contract.violations(json(404, 'DELETE', '/v1/plans', problem(404))), []);
    assert.match(contract.violations(json(200, 'GET', '/v1/nothing-here', {})).join(), /no documented operation/);
    assert.match(contract.violations(json(500, 'GET', '/v1/plans', problem(500))).join(), /status not documented/);
  });
});
