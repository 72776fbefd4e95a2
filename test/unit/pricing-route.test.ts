import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import express, { type ErrorRequestHandler } from 'express';
import type { Scope } from '../../src/keys/principal';
import { ProblemError, type ProblemBody } from '../../src/api/problem';
import { pricingRouter } from '../../src/api/routes/pricing';
import type { PricedPlan } from '../../src/domain/pricing';
import { listen, type Listening } from '../support/http';

const renderProblem: ErrorRequestHandler = (err, _req, res, next) => {
  if (!(err instanceof ProblemError)) return next(err);
  res.status(err.status).type('application/problem+json').json(err.toBody());
};

let server: Listening;
let url: string;

before(async () => {
  const app = express();
  app.use(express.json());
  // Stands in for authentication: the test names the caller's scopes in a header.
  app.use((req, _res, next) => {
    const scopes = (req.header('x-test-scopes') ?? 'billing:read').split(',').filter(Boolean) as Scope[];
    req.principal = {
      keyId: 'test',
      environment: 'test',
      scopes,
      customer: null,
      limits: { ratePerSecond: 1000, burst: 1000, expiresAt: null },
    };
    next();
  });
  app.use(pricingRouter);
  app.use(renderProblem);
  server = await listen(app);
  url = `${server.url}/v1/pricing/preview`;
});

after(() => server.close());

const post = (body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

type ValidationProblem = ProblemBody & { errors: { pointer: string; detail: string }[] };

const tiers = [
  { up_to: '5', unit_price: '7' },
  { up_to: '10', unit_price: '6.50' },
  { up_to: null, unit_price: '6' },
];

describe('POST /v1/pricing/preview', () => {
  test('prices the published tier table graduated and volume', async () => {
    const res = await post({
      plan: {
        currency: 'USD',
        base_fee: '20',
        charges: [
          { meter: 'seats', model: 'graduated', tiers },
          { meter: 'projects', model: 'volume', tiers },
        ],
      },
      usage: { seats: 12, projects: '12' },
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as PricedPlan;
    assert.deepEqual(
      body.lines.map((l) => [l.type, l.meter, l.amount]),
      [
        ['base_fee', null, '20.00'],
        ['usage', 'seats', '79.50'],
        ['usage', 'projects', '72.00'],
      ],
    );
    assert.deepEqual(body.totals, { base_fee: '20.00', charges: '151.50', minimum_commitment_true_up: '0.00', total: '171.50' });
    assert.equal(body.lines[1]!.breakdown.length, 3);
  });

  test('usage on a meter the plan does not price is a 400 naming it', async () => {
    const res = await post({
      plan: { currency: 'USD', charges: [{ meter: 'seats', model: 'per_unit', unit_price: '1' }] },
      usage: { seat: 3 },
    });
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    const problem = (await res.json()) as ValidationProblem;
    assert.equal(problem.type, '/problems/validation_failed');
    assert.deepEqual(problem.errors, [{ pointer: '#/usage/seat', detail: 'unknown meter "seat": the plan has no charge for it' }]);
  });

  test('an invalid plan is a 400 with a pointer to the field', async () => {
    const res = await post({
      plan: { currency: 'USD', charges: [{ meter: 'seats', model: 'volume', tiers: tiers.slice(0, 2) }] },
      usage: { seats: '-1' },
    });
    assert.equal(res.status, 400);
    const problem = (await res.json()) as ValidationProblem;
    assert.deepEqual(
      problem.errors.map((e) => e.pointer),
      ['#/plan/charges/0/tiers/1/up_to', '#/usage/seats'],
    );
  });

  test('requires the billing:read scope', async () => {
    const res = await post({ plan: { currency: 'USD', charges: [] }, usage: {} }, { 'x-test-scopes': 'events:write' });
    assert.equal(res.status, 403);
  });
});
