import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { scopes } from '../../src/keys/principal';
import { buildOpenApiDocument } from '../../src/api/openapi';
import { readEvents } from '../../src/cli/backfill-source';
import { MAX_JSON_DEPTH } from '../../src/domain/edge-schemas';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import { startProviderSimulator, type ProviderSimulator } from '../../src/provider/simulator';
import { freePort } from '../../scripts/free-port';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { ManualClock, startKeysApp, type KeysTestApp } from '../support/keys-app';
import { localEnvironment } from '../support/temporal';

/*
 * Hostile input, route by route, against the whole API (every router, real keys, real Postgres,
 * a real Temporal server): every answer must be a 4xx application/problem+json, and not one row
 * may change. The operations come from the OpenAPI document, so a new route without an entry in
 * `valid` fails the first test; path and query parameters are taken from the document, and body
 * mutations are derived from each operation's valid body, leaf by leaf. The last test sends the
 * unmutated requests, to show that each mutation was refused for what it changed.
 */

const NOW = new Date('2026-03-15T12:00:00Z');
const ID = '00000000-0000-4000-8000-000000000000';
const RUN_ID = 'reconcile/2026-01-01T00:00:00.000Z/all';

interface RequestSpec {
  params?: Record<string, string>;
  query?: Record<string, string>;
  body?: unknown;
}

const plan = {
  id: 'basic',
  name: 'Basic',
  currency: 'USD',
  base_fee: '10.00',
  charges: [
    { meter: 'api_calls', model: 'per_unit', unit_price: '0.01' },
    {
      meter: 'tokens',
      model: 'graduated',
      tiers: [
        { up_to: '1000', unit_price: '0' },
        { up_to: null, unit_price: '0.002', flat_fee: '1.00' },
      ],
    },
  ],
  interval: { kind: 'calendar_month' },
  limits: [
    {
      meter: 'api_calls',
      soft_thresholds: [{ percent: 80 }, { absolute: '900' }],
      hard_limit: '1000',
      grace_period: 'PT1H',
      at_hard_limit: 'block',
    },
  ],
};

/** One valid request per operation of the OpenAPI document, keyed `METHOD path`. */
const valid: Record<string, RequestSpec> = {
  'GET /healthz': {},
  'GET /readyz': {},
  'GET /openapi.json': {},
  'GET /problems': {},
  'GET /problems/{code}': { params: { code: 'validation_failed' } },
  'GET /metrics': {},
  'POST /v1/entitlements/check': { body: { customer: 'acme', meter: 'api_calls', quantity: '1.5' } },
  'GET /v1/invoices': {
    query: { limit: '10', customer: 'acme', status: 'draft', period_from: '2026-01-01T00:00:00Z', period_to: '2026-12-01T00:00:00+01:00' },
  },
  'GET /v1/invoices/upcoming': { query: { customer: 'acme' } },
  'GET /v1/invoices/{id}': { params: { id: ID } },
  'GET /v1/invoices/{id}.pdf': { params: { id: ID } },
  'GET /v1/invoices/{id}.html': { params: { id: ID } },
  'POST /v1/invoices/{id}/void': { params: { id: ID }, body: { reason: 'issued twice' } },
  'POST /v1/plans': { body: plan },
  'GET /v1/plans': { query: { limit: '10', after: 'a' } },
  'GET /v1/plans/{code}': { params: { code: 'basic' } },
  'POST /v1/pricing/preview': {
    body: {
      plan: { id: 'preview', currency: 'USD', rounding: 'half_even', base_fee: '1.00', charges: plan.charges },
      usage: { api_calls: 12, tokens: '1500.5' },
    },
  },
  'POST /v1/reconciliations': {
    body: { period_start: '2026-01-01', period_end: '2026-02-01T00:00:00Z', customer: 'acme', auto_approve: false },
  },
  'GET /v1/reconciliations/{id}': { params: { id: RUN_ID } },
  'POST /v1/reconciliations/{id}/approve': { params: { id: RUN_ID } },
  'POST /v1/reconciliations/{id}/retry': { params: { id: RUN_ID } },
  'POST /v1/reconciliations/{id}/dismiss': { params: { id: RUN_ID }, body: { reason: 'checked by hand' } },
  'POST /v1/coupons': {
    body: {
      code: 'WELCOME',
      name: 'Welcome',
      discount: { type: 'fixed_amount', amount_off: '5.00', currency: 'USD' },
      duration: { kind: 'repeating', periods: 3 },
      meters: ['api_calls'],
    },
  },
  'GET /v1/coupons': { query: { limit: '10', after: 'A' } },
  'GET /v1/coupons/{code}': { params: { code: 'WELCOME' } },
  'POST /v1/customers/{externalId}/coupons': { params: { externalId: 'acme' }, body: { coupon: 'WELCOME', subscription_id: ID } },
  'GET /v1/customers/{externalId}/coupons': { params: { externalId: 'acme' } },
  'POST /v1/customers/{externalId}/tax-rates': {
    params: { externalId: 'acme' },
    body: { code: 'vat', name: 'VAT 20%', percentage: '20', inclusive: false, meter: 'api_calls' },
  },
  'GET /v1/customers/{externalId}/tax-rates': { params: { externalId: 'acme' } },
  'POST /v1/customers/{externalId}/tax-rates/{code}/archive': { params: { externalId: 'acme', code: 'vat' } },
  'POST /v1/subscriptions': { body: { customer: 'acme', plan: 'basic', start: '2026-03-01T00:00:00Z' } },
  'GET /v1/subscriptions/{id}': { params: { id: ID } },
  'GET /v1/customers/{externalId}/subscription': { params: { externalId: 'acme' } },
  'POST /v1/customers/{externalId}/credits': {
    params: { externalId: 'acme' },
    body: { reference: 'order-1', source: 'purchased', currency: 'USD', amount: '50.00', priority: 1, expires_at: null },
  },
  'GET /v1/customers/{externalId}/credits': { params: { externalId: 'acme' }, query: { currency: 'USD' } },
  'GET /v1/customers/{externalId}/credits/grants': { params: { externalId: 'acme' }, query: { currency: 'USD' } },
  'GET /v1/customers/{externalId}/credits/ledger': { params: { externalId: 'acme' }, query: { currency: 'USD', limit: '10', after: '1' } },
  'PUT /v1/customers/{externalId}/credits/auto-top-up': {
    params: { externalId: 'acme' },
    body: { currency: 'USD', threshold: '10.00', amount: '50.00', enabled: true },
  },
  'POST /v1/customers/{externalId}/credits/grants/{grantId}/void': { params: { externalId: 'acme', grantId: ID } },
  'POST /v1/subscriptions/{id}/cancel': { params: { id: ID } },
  'POST /v1/subscriptions/{id}/change-plan': { params: { id: ID }, body: { plan: 'basic' } },
  'PUT /v1/subscriptions/{id}/spend-thresholds': { params: { id: ID }, body: { amounts: ['500.00'], every: '250.00' } },
  'POST /v1/subscriptions/{id}/spend-cap': {
    params: { id: ID },
    body: { spend_cap: { amount: '250.00', grace_period: 'PT1H', soft_thresholds: [{ percent: 80 }] } },
  },
  'POST /v1/webhook-endpoints': { body: { url: 'https://hooks.example.com/meterflow?x=1', customer: 'acme' } },
  'GET /v1/webhook-endpoints': { query: { limit: '10', after: ID } },
  'GET /v1/webhook-endpoints/{id}': { params: { id: ID } },
  'DELETE /v1/webhook-endpoints/{id}': { params: { id: ID } },
  'POST /v1/customers': { body: { external_id: 'initech', name: 'Initech', currency: 'USD' } },
  'GET /v1/customers': { query: { limit: '10', after: 'a' } },
  'GET /v1/customers/{externalId}': { params: { externalId: 'acme' } },
  'POST /v1/events': {
    query: { atomic: 'false' },
    body: {
      id: 'evt-1',
      customer: 'acme',
      type: 'tokens',
      timestamp: '2026-03-15T11:00:00Z',
      properties: { tokens: '12.5', model: 'small', tags: ['a', { b: 1.5 }] },
    },
  },
  'POST /v1/meters': {
    body: {
      code: 'storage',
      name: 'Storage',
      event_type: 'storage',
      aggregation: 'max',
      value_property: 'gb',
      filter: { region: 'eu', tier: 2, hot: true },
    },
  },
  'GET /v1/meters': { query: { limit: '10', after: 'a' } },
  'GET /v1/meters/{code}': { params: { code: 'tokens' } },
  'GET /v1/usage': {
    query: { customer: 'acme', meter: 'tokens', from: '2026-03-01T00:00:00Z', to: '2026-03-15T00:00:00Z', granularity: 'day' },
  },
  'POST /v1/keys': {
    body: {
      name: 'ci',
      environment: 'test',
      scopes: ['events:write'],
      customer: 'acme',
      expires_at: '2027-01-01T00:00:00Z',
      rate_limit: { per_second: 10, burst: 5 },
    },
  },
  'GET /v1/keys': { query: { limit: '10', after: ID } },
  'GET /v1/keys/current': {},
  'POST /v1/portal-sessions': { body: { customer: 'acme', expires_in: 600 } },
  'DELETE /v1/portal-sessions/{id}': { params: { id: ID } },
  'GET /v1/portal-sessions/current': {},
  'GET /portal': {},
  'GET /portal/assets/{file}': { params: { file: 'portal.js' } },
  'GET /v1/keys/{id}': { params: { id: ID } },
  'PATCH /v1/keys/{id}': {
    params: { id: ID },
    body: { name: 'renamed', scopes: ['events:write'], expires_at: '2027-01-01T00:00:00Z', rate_limit: { per_second: 5, burst: 0 } },
  },
  'POST /v1/keys/{id}/revoke': { params: { id: ID } },
  'POST /v1/keys/{id}/rotate': { params: { id: ID }, body: { grace_seconds: 60, expires_at: '2027-01-01T00:00:00Z' } },
};

interface Operation {
  key: string;
  method: string;
  path: string;
  pathParams: string[];
  queryParams: string[];
  hasBody: boolean;
}

type DocOperation = { parameters?: Array<{ in: string; name: string }>; requestBody?: unknown };
const operations: Operation[] = Object.entries(buildOpenApiDocument().paths ?? {}).flatMap(([path, item]) =>
  Object.entries(item as Record<string, DocOperation>).map(([method, op]) => ({
    key: `${method.toUpperCase()} ${path}`,
    method: method.toUpperCase(),
    path,
    pathParams: (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name),
    queryParams: (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name),
    hasBody: op.requestBody !== undefined,
  })),
);

// Values JSON and URLs can carry that PostgreSQL, JavaScript or a stack cannot.
const NUL = 'a\u0000b';
const LONE_SURROGATE = 'a\ud800b';
const LONG = 'x'.repeat(10_000);
const DEEP = '['.repeat(10_000) + ']'.repeat(10_000);
const BAD_INSTANTS = [
  '0000-01-01T00:00:00Z',
  '0001-01-01T00:00:00+01:00',
  '1969-12-31T23:59:59Z',
  '10000-01-01T00:00:00Z',
  '+275760-09-13T00:00:00Z',
  '2026-02-30T00:00:00Z',
  '0000-01-01',
];
/** Decimal strings no amount, price or quantity may be: exponents, non-numbers, signs, too many digits. */
const BAD_DECIMALS = ['1e400', '1E2', 'NaN', 'Infinity', '-1', '0x10', '1'.repeat(60), '1.' + '1'.repeat(60), ' 1', '1,5'];
const looksLikeInstant = (s: string) => /^\d{4}-\d{2}-\d{2}/.test(s);

let env: TestWorkflowEnvironment;
let simulator: ProviderSimulator;
let db: TestDatabase;
let app: KeysTestApp;
let admin: string;

interface Sent {
  status: number;
  type: string;
  body: { type?: string; detail?: string; [k: string]: unknown };
}

/** Sends `spec`; `raw` replaces its body with JSON text (or bytes) and its query with a query string. */
async function send(
  op: Pick<Operation, 'method' | 'path'>,
  spec: RequestSpec,
  raw: { body?: string | Buffer; contentType?: string; query?: string; headers?: Record<string, string> } = {},
): Promise<Sent> {
  const path = op.path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = spec.params?.[name] ?? '';
    // A run id keeps its slashes; every other value is one encoded segment.
    return name === 'id' && value === RUN_ID ? value : encodeURIComponent(value);
  });
  const query = raw.query ?? new URLSearchParams(spec.query ?? {}).toString();
  const body = raw.body ?? (spec.body === undefined ? undefined : JSON.stringify(spec.body));
  const res = await fetch(`${app.url}${path}${query ? `?${query}` : ''}`, {
    method: op.method,
    headers: {
      authorization: `Bearer ${admin}`,
      ...(body !== undefined ? { 'content-type': raw.contentType ?? 'application/json' } : {}),
      ...raw.headers,
    },
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  let parsed: Sent['body'] = {};
  try {
    parsed = JSON.parse(text) as Sent['body'];
  } catch {
    // Not JSON: the assertion on the content type reports it.
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: parsed };
}

/** A refusal for what the request carries: 400/413/415/422, as problem+json. */
function assertRefused(sent: Sent, what: string): void {
  assert.ok(
    [400, 413, 415, 422].includes(sent.status),
    `${what}: expected a 4xx refusal, got ${sent.status} ${JSON.stringify(sent.body).slice(0, 300)}`,
  );
  assert.match(sent.type, /^application\/problem\+json/, `${what}: content type ${sent.type}`);
  assert.match(sent.body.type ?? '', /^\/problems\//, `${what}: problem type`);
}

/** Every table's row count and a hash of its content. */
async function fingerprint(): Promise<Record<string, string>> {
  const { rows: tables } = await db.pool.query<{ name: string }>(
    `select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by 1`,
  );
  const out: Record<string, string> = {};
  for (const { name } of tables) {
    const { rows } = await db.pool.query<{ n: number; h: string }>(
      `select count(*)::int as n, md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as h from ${JSON.stringify(name)} t`,
    );
    out[name] = `${rows[0]!.n}:${rows[0]!.h}`;
  }
  return out;
}

type Path = Array<string | number>;

/** Every leaf and every object of a JSON value, with its path. */
function nodes(value: unknown, path: Path = []): Array<{ path: Path; value: unknown }> {
  if (Array.isArray(value)) return [{ path, value }, ...value.flatMap((v, i) => nodes(v, [...path, i]))];
  if (value !== null && typeof value === 'object')
    return [{ path, value }, ...Object.entries(value).flatMap(([k, v]) => nodes(v, [...path, k]))];
  return [{ path, value }];
}

function replaced(value: unknown, path: Path, replacement: unknown): unknown {
  if (path.length === 0) return replacement;
  const [head, ...rest] = path;
  if (Array.isArray(value)) return value.map((v, i) => (i === head ? replaced(v, rest, replacement) : v));
  return { ...(value as Record<string, unknown>), [head!]: replaced((value as Record<string, unknown>)[head!], rest, replacement) };
}

const RAW = '\u0001raw\u0001';
/** The body as JSON text, with a raw JSON fragment (too deep or too large for JSON.stringify) at `path`. */
const withRaw = (body: unknown, path: Path, fragment: string) =>
  JSON.stringify(replaced(body, path, RAW)).replace(JSON.stringify(RAW), fragment);

/** Each way to spoil a valid body: a mutated JSON text and what it is. */
function bodyMutations(body: unknown): Array<{ what: string; text: string }> {
  const out: Array<{ what: string; text: string }> = [];
  for (const { path, value } of nodes(body)) {
    const at = `/${path.join('/')}`;
    if (typeof value === 'string') {
      for (const [what, bad] of [
        ['NUL', value + NUL],
        ['lone surrogate', value + LONE_SURROGATE],
        ['10,000 characters', value + LONG],
      ] as const) {
        out.push({ what: `${what} at ${at}`, text: JSON.stringify(replaced(body, path, bad)) });
      }
      if (looksLikeInstant(value))
        for (const bad of BAD_INSTANTS) out.push({ what: `${bad} at ${at}`, text: JSON.stringify(replaced(body, path, bad)) });
      if (/^\d+(\.\d+)?$/.test(value))
        for (const bad of BAD_DECIMALS) out.push({ what: `${bad.slice(0, 12)} at ${at}`, text: JSON.stringify(replaced(body, path, bad)) });
    }
    if (typeof value === 'number') out.push({ what: `1e400 at ${at}`, text: withRaw(body, path, '1e400') });
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      // An object literal cannot hold an own __proto__ key, so it is written into the text.
      const text = withRaw(body, path, JSON.stringify({ ...value, __proto_marker__: { polluted: true } })).replace(
        '"__proto_marker__"',
        '"__proto__"',
      );
      out.push({ what: `__proto__ key in ${at}`, text });
    }
    if (path.length > 0) out.push({ what: `10,000-deep JSON at ${at}`, text: withRaw(body, path, DEEP) });
  }
  return out;
}

before(async () => {
  [env, db] = await Promise.all([localEnvironment(), createTestDatabase()]);
  simulator = await startProviderSimulator({ port: await freePort() });
  app = await startKeysApp(db, {
    clock: new ManualClock(NOW),
    billing: { client: env.client, taskQueue: 'bad-input', allowedLatenessMs: 60_000, dunning: [], usageReportIntervalMs: 300_000 },
    provider: createHttpPaymentProvider({ baseUrl: simulator.url, timeoutMs: 5000 }),
  });
  admin = (await app.issue({ scopes: [...scopes] })).secret;
  const seed = [
    ['POST', '/v1/customers', { external_id: 'acme', name: 'Acme', currency: 'USD' }],
    ['POST', '/v1/meters', { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count' }],
    ['POST', '/v1/meters', { code: 'tokens', name: 'Tokens', event_type: 'tokens', aggregation: 'sum', value_property: 'tokens' }],
    ['POST', '/v1/plans', plan],
  ] as const;
  for (const [method, path, body] of seed) assert.equal((await app.call(method, path, admin, body)).status, 201, `seed ${path}`);
});
after(async () => {
  await app?.close();
  await simulator?.close();
  await env?.teardown();
  await db?.drop();
});

describe('hostile input is refused with a problem and changes nothing', () => {
  let before: Record<string, string>;

  test('every operation of the OpenAPI document has a valid request to derive the hostile ones from', async () => {
    before = await fingerprint();
    assert.deepEqual(
      operations.map((o) => o.key).filter((k) => !(k in valid)),
      [],
    );
    assert.deepEqual(
      Object.keys(valid).filter((k) => !operations.some((o) => o.key === k)),
      [],
    );
  });

  test('path parameters: NUL, over-long, malformed percent-encoding', async () => {
    for (const op of operations) {
      for (const name of op.pathParams) {
        for (const [what, value] of [
          ['NUL', NUL],
          ['over-long', 'x'.repeat(2000)],
        ] as const) {
          const sent = await send(op, { ...valid[op.key], params: { ...valid[op.key]!.params, [name]: value } });
          assertRefused(sent, `${op.key} ${name} ${what}`);
          assert.match(sent.body.detail ?? '', new RegExp(`^Invalid params: ${name}`), `${op.key} ${name} ${what}: ${sent.body.detail}`);
        }
        const malformed = op.path.replace(`{${name}}`, '%E0%A4%A');
        assertRefused(await send({ method: op.method, path: malformed }, valid[op.key]!), `${op.key} ${name} malformed encoding`);
      }
    }
  });

  test('query parameters: NUL, over-long, repeated, bracketed, out-of-range instants, unknown', async () => {
    for (const op of operations) {
      const base = valid[op.key]!.query ?? {};
      const qs = (extra: Record<string, string | string[]>, without?: string) => {
        const params = new URLSearchParams(Object.entries(base).filter(([k]) => k !== without));
        for (const [k, v] of Object.entries(extra)) for (const item of [v].flat()) params.append(k, item);
        return params.toString();
      };
      // Query schemas are strict: a misspelt parameter is refused (operations without one ignore the query).
      const cases: Array<[string, string]> = op.queryParams.length
        ? [
            [`unknown parameter`, qs({ limt: '10' })],
            ['__proto__', qs({ ['__proto__']: 'x' })],
          ]
        : [];
      for (const name of op.queryParams) {
        cases.push(
          [`${name} NUL`, qs({ [name]: NUL }, name)],
          [`${name} over-long`, qs({ [name]: 'x'.repeat(2000) }, name)],
          [`${name} repeated`, qs({ [name]: [base[name] ?? '1', base[name] ?? '1'] }, name)],
          [`${name}[]`, qs({ [`${name}[]`]: '1' }, name)],
          [`${name}[a]`, qs({ [`${name}[a]`]: 'b' }, name)],
        );
        if (looksLikeInstant(base[name] ?? '')) for (const bad of BAD_INSTANTS) cases.push([`${name} ${bad}`, qs({ [name]: bad }, name)]);
        if (name === 'limit') cases.push(['limit 1e400', qs({ limit: '1e400' }, name)], ['limit 0.5', qs({ limit: '0.5' }, name)]);
      }
      for (const [what, query] of cases) assertRefused(await send(op, valid[op.key]!, { query }), `${op.key} ${what}`);
    }
  });

  test('bodies: NUL, lone surrogates, 10,000 characters, bad instants, 1e400, __proto__ and 10,000-deep JSON at every field', async () => {
    for (const op of operations.filter((o) => o.hasBody)) {
      const spec = valid[op.key]!;
      for (const { what, text } of bodyMutations(spec.body)) assertRefused(await send(op, spec, { body: text }), `${op.key} ${what}`);
    }
  });

  test('bodies that are not the expected JSON: scalars, deep arrays, bad syntax, other charsets and types, invalid UTF-8, too large', async () => {
    const cases: Array<{ what: string; body: string | Buffer; contentType?: string; headers?: Record<string, string> }> = [
      { what: 'null', body: 'null' },
      { what: 'a string', body: '"x"' },
      { what: '1e400', body: '1e400' },
      { what: 'an empty array', body: '[]' },
      { what: 'a 10,000-deep array', body: DEEP },
      { what: 'a 10,000-deep object', body: '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000) },
      { what: 'truncated JSON', body: '{"a": ' },
      { what: 'a NUL key', body: '{"a\\u0000": 1}' },
      { what: 'invalid UTF-8', body: Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]) },
      { what: 'UTF-16', body: '{}', contentType: 'application/json; charset=utf-16' },
      { what: 'an unknown charset', body: '{}', contentType: 'application/json; charset=klingon' },
      { what: 'form encoding', body: 'a=1', contentType: 'application/x-www-form-urlencoded' },
      { what: '6 MB', body: `{"a":"${'x'.repeat(6 * 1024 * 1024)}"}` },
      { what: 'gzip that is not', body: '{}', headers: { 'content-encoding': 'gzip' } },
      { what: 'an unknown encoding', body: '{}', headers: { 'content-encoding': 'klingon' } },
    ];
    for (const op of operations.filter((o) => o.hasBody)) {
      for (const c of cases) {
        const sent = await send(op, valid[op.key]!, {
          body: c.body,
          ...(c.contentType ? { contentType: c.contentType } : {}),
          ...(c.headers ? { headers: c.headers } : {}),
        });
        assertRefused(sent, `${op.key} body ${c.what}`);
      }
    }
  });

  test('field values zod parses but a column check refuses', async () => {
    const op = { method: 'POST', path: '/v1/webhook-endpoints' };
    // The stored text must satisfy webhook_endpoints' check (url ~ '^https?://'); zod itself trims surrounding white space.
    for (const url of ['HTTPS://hooks.example.com/x', 'Http://hooks.example.com/x', 'https://hooks.example.com/a b']) {
      assertRefused(await send(op, { body: { url } }), `webhook url ${JSON.stringify(url)}`);
    }
  });

  test('forged invoice cursors: year 0, too deep, NUL, not JSON', async () => {
    const forged = (payload: string) => Buffer.from(payload).toString('base64url');
    for (const payload of [
      '["0000-01-01T00:00:00Z","' + ID + '"]',
      '['.repeat(90) + ']'.repeat(90),
      '["2026-01-01T00:00:00Z","a\\u0000"]',
      '{"__proto__":1}',
      'not json',
      '[]',
    ]) {
      assertRefused(
        await send({ method: 'GET', path: '/v1/invoices' }, { query: { after: forged(payload) } }),
        `cursor ${payload.slice(0, 40)}`,
      );
    }
  });

  test('a subscription whose first period would end after 9999 is refused', async () => {
    const sent = await send(
      { method: 'POST', path: '/v1/subscriptions' },
      { body: { customer: 'acme', plan: 'basic', start: '9999-12-15T00:00:00Z' } },
    );
    assertRefused(sent, 'start 9999-12-15');
    assert.equal(sent.body.reason, 'start_out_of_range');
  });

  test('names of inherited properties are no problem types', async () => {
    for (const name of ['__proto__', 'constructor', 'toString']) {
      const res = await fetch(`${app.url}/problems/${name}`);
      assert.equal(res.status, 404, name);
      assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
    }
  });

  test('no row changed', async () => {
    assert.deepEqual(await fingerprint(), before);
  });
});

describe('a bad event costs only itself', () => {
  const event = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    customer: 'acme',
    type: 'tokens',
    properties: { tokens: '2' },
    ...extra,
  });
  /** An event as JSON text, with a raw fragment (too deep or too large for JSON.stringify) as the property `raw`. */
  const eventWith = (id: string, fragment: string) =>
    withRaw(event(id, { properties: { tokens: '1', raw: RAW } }), ['properties', 'raw'], fragment);
  /** Each bad event as JSON text; none can be stored, and each is refused by validation. */
  const bad = [
    JSON.stringify(event('nul\u0000id')),
    JSON.stringify(event('year-0', { timestamp: '0000-01-01T00:00:00Z' })),
    JSON.stringify(event('year-0-offset', { timestamp: '0001-01-01T00:00:00+01:00' })),
    JSON.stringify(event('year-10000', { timestamp: '+010000-01-01T00:00:00Z' })),
    eventWith('deep', DEEP),
    eventWith('too-deep-by-one', '['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH)),
    eventWith('huge', '1e400'),
    eventWith('proto', '{"__proto__": {"polluted": true}}'),
    JSON.stringify(event('nul-value', { properties: { tokens: '1', note: 'a\u0000b' } })),
    JSON.stringify(event('nul-key', { properties: { tokens: '1', 'a\u0000': 1 } })),
    JSON.stringify(event('surrogate', { properties: { tokens: '1', note: '\udc00' } })),
    JSON.stringify(event('nul-customer', { customer: 'ac\u0000me' })),
  ];
  const batch = (events: string[]) => `[${events.join(',')}]`;
  const stored = async (ids: string[]) =>
    (await db.pool.query<{ n: number }>('select count(*)::int as n from usage_events where event_id = any($1)', [ids])).rows[0]!.n;

  test('in a non-atomic batch each bad event is rejected with a reason and every valid one is stored', async () => {
    const good = [randomUUID(), randomUUID(), randomUUID()];
    const [a, b, c] = good.map((id) => JSON.stringify(event(id)));
    const sent = await send({ method: 'POST', path: '/v1/events' }, {}, { body: batch([a!, ...bad.slice(0, 6), b!, ...bad.slice(6), c!]) });
    assert.equal(sent.status, 200, JSON.stringify(sent.body).slice(0, 500));
    assert.equal(sent.body.accepted, 3);
    assert.equal(sent.body.rejected, bad.length);
    const results = sent.body.results as Array<{ status: string; reason?: string; detail?: string }>;
    for (const r of results.filter((r) => r.status === 'rejected')) assert.equal(r.reason, 'invalid_event', JSON.stringify(r));
    assert.equal(await stored(good), 3);
  });

  test('in an atomic batch a bad event stores nothing and is a 4xx', async () => {
    const good = [randomUUID(), randomUUID()];
    const [a, b] = good.map((id) => JSON.stringify(event(id)));
    for (const one of bad) {
      assertRefused(
        await send({ method: 'POST', path: '/v1/events' }, {}, { body: batch([a!, one, b!]), query: 'atomic=true' }),
        `atomic batch with ${one.slice(0, 40)}`,
      );
    }
    assert.equal(await stored(good), 0);
  });

  test('CloudEvents: a NUL subject or a year-0 time is rejected alone', async () => {
    const ce = (id: string, extra: Record<string, unknown> = {}) => ({
      specversion: '1.0',
      id,
      source: 'test',
      type: 'tokens',
      subject: 'acme',
      data: { tokens: '1' },
      ...extra,
    });
    const good = [randomUUID(), randomUUID()];
    const body = JSON.stringify([
      ce(good[0]!),
      ce('bad-subject', { subject: 'a\u0000' }),
      ce('bad-time', { time: '0000-01-01T00:00:00Z' }),
      ce('bad-source', { source: '\u0000' }),
      ce(good[1]!),
    ]);
    const sent = await send({ method: 'POST', path: '/v1/events' }, {}, { body, contentType: 'application/cloudevents-batch+json' });
    assert.equal(sent.status, 200, JSON.stringify(sent.body).slice(0, 500));
    assert.deepEqual([sent.body.accepted, sent.body.rejected], [2, 3]);
    assert.equal(await stored(good), 2);
  });
});

describe('the edges of the instant range', () => {
  test('are served: usage buckets, invoice filters and key expiry at 1970 and at the end of 9999', async () => {
    const last = '9999-12-31T23:59:59.999Z';
    for (const granularity of ['hour', 'day']) {
      for (const [from, to] of [
        ['9999-12-30T00:00:00Z', last],
        ['1970-01-01T00:00:00Z', '1970-01-02T00:30:00+01:00'],
      ]) {
        const sent = await send(
          { method: 'GET', path: '/v1/usage' },
          { query: { customer: 'acme', meter: 'tokens', from: from!, to: to!, granularity } },
        );
        assert.equal(sent.status, 200, `${from}..${to} by ${granularity}: ${JSON.stringify(sent.body).slice(0, 300)}`);
      }
    }
    const invoices = await send(
      { method: 'GET', path: '/v1/invoices' },
      { query: { period_from: '1970-01-01T00:00:00Z', period_to: last } },
    );
    assert.equal(invoices.status, 200, JSON.stringify(invoices.body));
    const key = await send(
      { method: 'POST', path: '/v1/keys' },
      { body: { name: 'long-lived', scopes: ['events:write'], expires_at: last } },
    );
    assert.equal(key.status, 201, JSON.stringify(key.body));
    assert.equal(key.body.expires_at, last);
  });
});

describe('the unmutated requests are valid', () => {
  test('each is answered without a validation refusal, so the mutations above were refused for what they changed', async () => {
    for (const op of operations) {
      const sent = await send(op, valid[op.key]!);
      assert.ok(sent.status < 500 && sent.status !== 400, `${op.key}: ${sent.status} ${JSON.stringify(sent.body).slice(0, 300)}`);
    }
  });
});

describe('the backfill reader', () => {
  test('reports a line nested 10,000 deep as malformed and reads on, instead of overflowing the stack when it sends it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'bad-input-'));
    const file = path.join(dir, 'events.ndjson');
    const ok = (id: string, nested: string) => `{"id":"${id}","type":"tokens","properties":{"tokens":"1","n":${nested}}}`;
    const deepest = '['.repeat(MAX_JSON_DEPTH - 1) + ']'.repeat(MAX_JSON_DEPTH - 1);
    await writeFile(file, [ok('a', deepest), ok('b', DEEP), ok('c', '1')].join('\n'));
    try {
      const items = [];
      for await (const item of readEvents(file, 'ndjson', 0)) items.push(item);
      assert.deepEqual(
        items.map((i) => ('malformed' in i ? i.malformed.reason : 'event')),
        ['event', 'malformed_line', 'event'],
      );
      // What the reader passes on, the API takes: the deepest line it accepts is within the properties' limit.
      const sent = await send(
        { method: 'POST', path: '/v1/events' },
        {},
        { body: JSON.stringify({ ...(items[0] as { event: object }).event, customer: 'acme' }) },
      );
      assert.equal(sent.status, 201, JSON.stringify(sent.body));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
