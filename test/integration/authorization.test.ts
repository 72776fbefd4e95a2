import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { defaultActivityInfo, MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { createDraftInvoice } from '../../src/activities/draft-invoice';
import { policy, type Rule } from '../../src/api/authorization';
import { systemClock } from '../../src/clock';
import { scopes, type Scope } from '../../src/keys/principal';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import { startProviderSimulator, type ProviderSimulator } from '../../src/provider/simulator';
import { freePort } from '../../scripts/free-port';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';
import { localEnvironment } from '../support/temporal';

/*
 * The authorization policy (src/api/authorization.ts) against the running API, as every entry
 * point composes it: every operation of the OpenAPI document the app serves must have a declared
 * rule and a request here, and is called with no key, an unrestricted key of every scope, a key
 * of each single scope, and a key of every scope restricted to customer acme (on acme, on
 * globex, and on a customer or id that does not exist).
 */

type Json = Record<string, any>;
interface Call {
  method: string;
  path: string;
  body?: unknown;
}
interface Answer {
  status: number;
  body: Json;
}
/** What a request addresses: the restricted key's customer, another existing one, or nothing that exists. */
type Target = 'own' | 'other' | 'absent';

let db: TestDatabase;
let temporal: TestWorkflowEnvironment;
let simulator: ProviderSimulator;
let t: KeysTestApp;
const keys = {} as { all: string; acme: string; single: Record<Scope, string> };
const invoices = {} as Record<'acme' | 'globex', string>;

const send = async (key: string | undefined, call: Call): Promise<Answer> => {
  const res = await t.call(call.method, call.path, key, call.body);
  return { status: res.status, body: (await res.json()) as Json };
};
const ok = async (key: string, call: Call): Promise<Json> => {
  const answer = await send(key, call);
  assert.ok(answer.status < 300, `${call.method} ${call.path}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body;
};

const customerOf = (target: Target) => ({ own: 'acme', other: 'globex', absent: 'nobody' })[target];

/** A fresh key of `customer` (so revoking or rotating it disturbs nothing else), or an id no key has. */
const keyOf = async (target: Target) =>
  target === 'absent' ? randomUUID() : (await t.issue({ scopes: ['keys:admin'], customer: customerOf(target) })).id;
const endpointOf = async (target: Target) =>
  target === 'absent'
    ? randomUUID()
    : ((
        await ok(keys.all, {
          method: 'POST',
          path: '/v1/webhook-endpoints',
          body: { url: 'https://example.com/hook', customer: customerOf(target) },
        })
      ).id as string);
/** The customer's active subscription, subscribing it again when a test canceled it. */
const subscriptionOf = async (target: Target): Promise<string> => {
  if (target === 'absent') return randomUUID();
  const customer = customerOf(target);
  const current = await send(keys.all, { method: 'GET', path: `/v1/customers/${customer}/subscription` });
  if (current.status === 200) return current.body.id as string;
  return (await ok(keys.all, { method: 'POST', path: '/v1/subscriptions', body: { customer, plan: 'basic' } })).id as string;
};
/** A fresh portal session of acme, for a revocation to end. */
const portalSessionOf = async () =>
  (await ok(keys.all, { method: 'POST', path: '/v1/portal-sessions', body: { customer: 'acme' } })).id as string;
const invoiceOf = (target: Target) => (target === 'absent' ? randomUUID() : invoices[target === 'own' ? 'acme' : 'globex']);

const run = 'reconcile%2F2026-01-01T00%3A00%3A00.000Z%2Fall';
const usageQuery = (customer: string) => `customer=${customer}&meter=api_calls&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z`;
const plan = {
  id: 'basic',
  name: 'Basic',
  currency: 'USD',
  base_fee: '5.00',
  charges: [{ meter: 'api_calls', model: 'per_unit', unit_price: '0.01' }],
  interval: { kind: 'calendar_month' },
};

/**
 * A request per operation. Those of `own_customer` operations take the target; a list without a
 * customer filter instead says how to tell that a page holds only acme's items.
 */
const requests: Record<
  string,
  { call: (target: Target) => Promise<Call> | Call; onlyAcme?: (page: Json) => boolean; ownRefusal?: string }
> = {
  'POST /v1/customers': {
    call: () => ({ method: 'POST', path: '/v1/customers', body: { external_id: 'acme', name: 'acme', currency: 'USD' } }),
  },
  'GET /v1/customers': { call: () => ({ method: 'GET', path: '/v1/customers' }) },
  'GET /v1/customers/{externalId}': { call: (to) => ({ method: 'GET', path: `/v1/customers/${customerOf(to)}` }) },
  'POST /v1/meters': {
    call: () => ({
      method: 'POST',
      path: '/v1/meters',
      body: { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} },
    }),
  },
  'GET /v1/meters': { call: () => ({ method: 'GET', path: '/v1/meters' }) },
  'GET /v1/meters/{code}': { call: () => ({ method: 'GET', path: '/v1/meters/api_calls' }) },
  'POST /v1/events': {
    call: (to) => ({ method: 'POST', path: '/v1/events', body: { id: randomUUID(), customer: customerOf(to), type: 'api_call' } }),
  },
  'GET /v1/usage': { call: (to) => ({ method: 'GET', path: `/v1/usage?${usageQuery(customerOf(to))}` }) },
  'POST /v1/entitlements/check': {
    call: (to) => ({ method: 'POST', path: '/v1/entitlements/check', body: { customer: customerOf(to), meter: 'api_calls' } }),
  },
  'POST /v1/pricing/preview': { call: () => ({ method: 'POST', path: '/v1/pricing/preview', body: { plan, usage: { api_calls: '10' } } }) },
  'POST /v1/plans': { call: () => ({ method: 'POST', path: '/v1/plans', body: plan }) },
  'GET /v1/plans': { call: () => ({ method: 'GET', path: '/v1/plans' }) },
  'GET /v1/plans/{code}': { call: () => ({ method: 'GET', path: '/v1/plans/basic' }) },
  'POST /v1/coupons': {
    call: () => ({
      method: 'POST',
      path: '/v1/coupons',
      body: { code: 'TEN', name: 'Ten', discount: { type: 'percentage', percent_off: '10' }, duration: { kind: 'once' } },
    }),
  },
  'GET /v1/coupons': { call: () => ({ method: 'GET', path: '/v1/coupons' }) },
  'GET /v1/coupons/{code}': { call: () => ({ method: 'GET', path: '/v1/coupons/TEN' }) },
  'POST /v1/customers/{externalId}/coupons': {
    call: (to) => ({ method: 'POST', path: `/v1/customers/${customerOf(to)}/coupons`, body: { coupon: 'TEN' } }),
  },
  'GET /v1/customers/{externalId}/coupons': { call: (to) => ({ method: 'GET', path: `/v1/customers/${customerOf(to)}/coupons` }) },
  'POST /v1/customers/{externalId}/tax-rates': {
    call: (to) => ({
      method: 'POST',
      path: `/v1/customers/${customerOf(to)}/tax-rates`,
      body: { code: 'vat', name: 'VAT', percentage: '20' },
    }),
  },
  'GET /v1/customers/{externalId}/tax-rates': { call: (to) => ({ method: 'GET', path: `/v1/customers/${customerOf(to)}/tax-rates` }) },
  'POST /v1/customers/{externalId}/tax-rates/{code}/archive': {
    call: (to) => ({ method: 'POST', path: `/v1/customers/${customerOf(to)}/tax-rates/vat/archive` }),
  },
  'POST /v1/subscriptions': {
    call: (to) => ({ method: 'POST', path: '/v1/subscriptions', body: { customer: customerOf(to), plan: 'basic' } }),
  },
  'GET /v1/subscriptions/{id}': { call: async (to) => ({ method: 'GET', path: `/v1/subscriptions/${await subscriptionOf(to)}` }) },
  'GET /v1/customers/{externalId}/subscription': {
    call: async (to) => (await subscriptionOf(to), { method: 'GET', path: `/v1/customers/${customerOf(to)}/subscription` }),
  },
  'POST /v1/subscriptions/{id}/cancel': {
    call: async (to) => ({ method: 'POST', path: `/v1/subscriptions/${await subscriptionOf(to)}/cancel` }),
  },
  // A real plan change waits for the billing workflow's update, and no worker runs here: an
  // unknown plan is refused after the subscription was found, which is what tells own from absent.
  'POST /v1/subscriptions/{id}/change-plan': {
    call: async (to) => ({
      method: 'POST',
      path: `/v1/subscriptions/${await subscriptionOf(to)}/change-plan`,
      body: { plan: 'no-such-plan' },
    }),
    ownRefusal: 'unknown_plan',
  },
  // Likewise a spend cap finer than the currency's minor unit is refused once the subscription was found.
  'POST /v1/subscriptions/{id}/spend-cap': {
    call: async (to) => ({
      method: 'POST',
      path: `/v1/subscriptions/${await subscriptionOf(to)}/spend-cap`,
      body: { spend_cap: { amount: '1.001' } },
    }),
    ownRefusal: 'spend_cap_precision',
  },
  // Canceled first, as no worker runs here to apply new thresholds: refused after the subscription was found.
  'PUT /v1/subscriptions/{id}/spend-thresholds': {
    call: async (to) => {
      const id = await subscriptionOf(to);
      if (to !== 'absent') await ok(keys.all, { method: 'POST', path: `/v1/subscriptions/${id}/cancel` });
      return { method: 'PUT', path: `/v1/subscriptions/${id}/spend-thresholds`, body: { amounts: ['100.00'], every: null } };
    },
    ownRefusal: 'subscription_canceled',
  },
  'GET /v1/invoices': { call: (to) => ({ method: 'GET', path: `/v1/invoices?customer=${customerOf(to)}` }) },
  'GET /v1/invoices/upcoming': {
    call: async (to) => (await subscriptionOf(to), { method: 'GET', path: `/v1/invoices/upcoming?customer=${customerOf(to)}` }),
  },
  'GET /v1/invoices/{id}': { call: (to) => ({ method: 'GET', path: `/v1/invoices/${invoiceOf(to)}` }) },
  // The fixtures are drafts, which have no document yet (409): acme's still answers past the guard.
  'GET /v1/invoices/{id}.pdf': {
    call: (to) => ({ method: 'GET', path: `/v1/invoices/${invoiceOf(to)}.pdf` }),
    ownRefusal: 'invoice_not_issued',
  },
  'GET /v1/invoices/{id}.html': {
    call: (to) => ({ method: 'GET', path: `/v1/invoices/${invoiceOf(to)}.html` }),
    ownRefusal: 'invoice_not_issued',
  },
  'POST /v1/customers/{externalId}/credits': {
    call: (to) => ({
      method: 'POST',
      path: `/v1/customers/${customerOf(to)}/credits`,
      body: { reference: randomUUID(), source: 'purchased', currency: 'USD', amount: '1.00' },
    }),
  },
  'GET /v1/customers/{externalId}/credits': { call: (to) => ({ method: 'GET', path: `/v1/customers/${customerOf(to)}/credits` }) },
  'GET /v1/customers/{externalId}/credits/grants': {
    call: (to) => ({ method: 'GET', path: `/v1/customers/${customerOf(to)}/credits/grants` }),
  },
  'GET /v1/customers/{externalId}/credits/ledger': {
    call: (to) => ({ method: 'GET', path: `/v1/customers/${customerOf(to)}/credits/ledger` }),
  },
  'PUT /v1/customers/{externalId}/credits/auto-top-up': {
    call: (to) => ({
      method: 'PUT',
      path: `/v1/customers/${customerOf(to)}/credits/auto-top-up`,
      body: { currency: 'USD', threshold: '1.00', amount: '5.00' },
    }),
  },
  // A fresh grant each time, so every key that may void finds credit left to void.
  'POST /v1/customers/{externalId}/credits/grants/{grantId}/void': {
    call: async (to) => {
      const grant =
        to === 'absent'
          ? randomUUID()
          : ((
              await ok(keys.all, {
                method: 'POST',
                path: `/v1/customers/${customerOf(to)}/credits`,
                body: { reference: randomUUID(), source: 'promotional', currency: 'USD', amount: '1.00' },
              })
            ).id as string);
      return { method: 'POST', path: `/v1/customers/${customerOf(to)}/credits/grants/${grant}/void` };
    },
  },
  'POST /v1/invoices/{id}/void': {
    call: () => ({ method: 'POST', path: `/v1/invoices/${invoices.acme}/void`, body: { reason: 'authorization test' } }),
  },
  'POST /v1/webhook-endpoints': {
    call: (to) => ({ method: 'POST', path: '/v1/webhook-endpoints', body: { url: 'https://example.com/hook', customer: customerOf(to) } }),
  },
  'GET /v1/webhook-endpoints': {
    call: () => ({ method: 'GET', path: '/v1/webhook-endpoints?limit=500' }),
    onlyAcme: (page) => page.data.every((e: Json) => e.customer === 'acme'),
  },
  'GET /v1/webhook-endpoints/{id}': { call: async (to) => ({ method: 'GET', path: `/v1/webhook-endpoints/${await endpointOf(to)}` }) },
  'DELETE /v1/webhook-endpoints/{id}': {
    call: async (to) => ({ method: 'DELETE', path: `/v1/webhook-endpoints/${await endpointOf(to)}` }),
  },
  'POST /v1/reconciliations': {
    call: () => ({ method: 'POST', path: '/v1/reconciliations', body: { period_start: '2026-01-01', period_end: '2026-02-01' } }),
  },
  'GET /v1/reconciliations/{id}': { call: () => ({ method: 'GET', path: `/v1/reconciliations/${run}` }) },
  'POST /v1/reconciliations/{id}/approve': { call: () => ({ method: 'POST', path: `/v1/reconciliations/${run}/approve` }) },
  'POST /v1/reconciliations/{id}/retry': { call: () => ({ method: 'POST', path: `/v1/reconciliations/${run}/retry` }) },
  'POST /v1/reconciliations/{id}/dismiss': { call: () => ({ method: 'POST', path: `/v1/reconciliations/${run}/dismiss`, body: {} }) },
  'POST /v1/portal-sessions': { call: () => ({ method: 'POST', path: '/v1/portal-sessions', body: { customer: 'acme' } }) },
  'DELETE /v1/portal-sessions/{id}': {
    call: async () => ({ method: 'DELETE', path: `/v1/portal-sessions/${await portalSessionOf()}` }),
  },
  'GET /v1/portal-sessions/current': { call: () => ({ method: 'GET', path: '/v1/portal-sessions/current' }) },
  'GET /v1/keys/current': { call: () => ({ method: 'GET', path: '/v1/keys/current' }) },
  'POST /v1/keys': {
    call: (to) => ({ method: 'POST', path: '/v1/keys', body: { name: 'minted', scopes: ['keys:admin'], customer: customerOf(to) } }),
  },
  'GET /v1/keys': {
    call: () => ({ method: 'GET', path: '/v1/keys?limit=500' }),
    onlyAcme: (page) => page.data.every((k: Json) => k.customer === 'acme'),
  },
  'GET /v1/keys/{id}': { call: async (to) => ({ method: 'GET', path: `/v1/keys/${await keyOf(to)}` }) },
  'PATCH /v1/keys/{id}': { call: async (to) => ({ method: 'PATCH', path: `/v1/keys/${await keyOf(to)}`, body: { name: 'renamed' } }) },
  'POST /v1/keys/{id}/revoke': { call: async (to) => ({ method: 'POST', path: `/v1/keys/${await keyOf(to)}/revoke` }) },
  'POST /v1/keys/{id}/rotate': { call: async (to) => ({ method: 'POST', path: `/v1/keys/${await keyOf(to)}/rotate`, body: {} }) },
};

/** The guard's own refusals; a handler's 403 (e.g. an escalation) is a decision made past the guard. */
const guardRefusal = ({ status, body }: Answer): string | undefined =>
  status === 401
    ? 'unauthenticated'
    : status === 403 && ['missing_scope', 'customer_restricted'].includes(body.reason)
      ? body.reason
      : undefined;

/** What a client can tell apart: for a problem its status, type and reason (the detail names what was asked for). */
const observable = ({ status, body }: Answer) => (status >= 400 ? { status, type: body.type, reason: body.reason } : { status, body });

before(async () => {
  [db, temporal] = await Promise.all([createTestDatabase(), localEnvironment()]);
  simulator = await startProviderSimulator({ port: await freePort() });
  t = await startKeysApp(db, {
    provider: createHttpPaymentProvider({ baseUrl: simulator.url, timeoutMs: 5000 }),
    billing: {
      client: temporal.client,
      taskQueue: 'authorization-test',
      allowedLatenessMs: 60_000,
      dunning: [],
      usageReportIntervalMs: 300_000,
    },
  });
  keys.all = (await t.issue({ scopes: [...scopes] })).secret;
  keys.single = Object.fromEntries(await Promise.all(scopes.map(async (s) => [s, (await t.issue({ scopes: [s] })).secret]))) as Record<
    Scope,
    string
  >;
  for (const c of ['acme', 'globex'])
    await ok(keys.all, { method: 'POST', path: '/v1/customers', body: { external_id: c, name: c, currency: 'USD' } });
  keys.acme = (await t.issue({ scopes: [...scopes], customer: 'acme' })).secret;
  await ok(keys.all, requests['POST /v1/meters']!.call('own') as Call);
  await ok(keys.all, { method: 'POST', path: '/v1/plans', body: plan });
  const activity = new MockActivityEnvironment({
    ...defaultActivityInfo,
    workflowExecution: { workflowId: 'billing/test', runId: 'run-1' },
  });
  for (const customer of ['acme', 'globex'] as const) {
    const { id } = await ok(keys.all, {
      method: 'POST',
      path: '/v1/subscriptions',
      body: { customer, plan: 'basic', start: '2026-01-01T00:00:00Z' },
    });
    const subscription = (await ok(keys.all, { method: 'GET', path: `/v1/subscriptions/${id as string}` })) as Json;
    const { rows } = await db.pool.query<{ id: string }>('select id from customers where external_id = $1', [customer]);
    const { invoiceId } = (await activity.run(createDraftInvoice({ pool: db.pool, clock: systemClock, lookbackInvoices: 0 }), {
      subscriptionId: subscription.id as string,
      customerId: rows[0]!.id,
      planCode: 'basic',
      periodStart: '2026-01-01T00:00:00.000Z',
      periodEnd: '2026-02-01T00:00:00.000Z',
    })) as { invoiceId: string };
    invoices[customer] = invoiceId;
  }
  // Something of globex's in every list, so "only acme's" is a real restriction.
  await ok(keys.all, (await requests['POST /v1/webhook-endpoints']!.call('other')) as Call);
  await t.issue({ scopes: ['usage:read'], customer: 'globex' });
});
after(async () => {
  await t?.close();
  await simulator?.close();
  await temporal?.teardown();
  await db?.drop();
});

describe('every operation of the OpenAPI document goes through the declared policy', () => {
  const rules = new Map<string, Rule>(
    Object.values(policy).flatMap((actions) => Object.values(actions).map((r: Rule) => [r.operation, r] as const)),
  );

  const operations = async (): Promise<{ operation: string; secured: boolean }[]> => {
    const doc = (await (await fetch(`${t.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { security?: unknown[] }>>;
    };
    return Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => ({
        operation: `${method.toUpperCase()} ${path}`,
        secured: (op.security ?? []).length > 0,
      })),
    );
  };

  test('each /v1 operation has exactly one rule and a request here; each rule names a documented operation', async () => {
    const ops = await operations();
    assert.ok(ops.length > 30, 'the document lists the API');
    assert.equal(
      rules.size,
      Object.values(policy).reduce((n, actions) => n + Object.keys(actions).length, 0),
      'one rule per operation',
    );
    for (const { operation, secured } of ops) {
      if (!operation.split(' ')[1]!.startsWith('/v1/')) {
        assert.equal(secured, false, `${operation} is outside /v1 and needs no key`);
        continue;
      }
      assert.ok(secured, `${operation} documents its API key`);
      assert.ok(rules.has(operation), `${operation} has no entry in the authorization policy`);
      assert.ok(requests[operation], `${operation} has no request in this test`);
    }
    const documented = new Set(ops.map((o) => o.operation));
    for (const operation of [...rules.keys(), ...Object.keys(requests)])
      assert.ok(documented.has(operation), `${operation} is not in the OpenAPI document`);
  });

  test('every /v1 route the app mounts is a documented operation, so the walk below reaches it', async () => {
    interface Layer {
      route?: { path: string; methods: Record<string, boolean> };
      handle?: { stack?: Layer[] };
    }
    // Express 5 keeps each mounted router's routes on its stack; paths use `:name` and `*name`.
    const mounted = (stack: Layer[]): string[] =>
      stack.flatMap((layer) =>
        layer.route
          ? Object.keys(layer.route.methods).map((m) => `${m.toUpperCase()} ${layer.route!.path.replace(/[:*](\w+)/g, '{$1}')}`)
          : mounted(layer.handle?.stack ?? []),
      );
    const routes = mounted((t.app as unknown as { router: { stack: Layer[] } }).router.stack).filter((r) =>
      r.split(' ')[1]!.startsWith('/v1/'),
    );
    assert.ok(routes.length >= rules.size, 'the app mounts its routers');
    const documented = new Set((await operations()).map((o) => o.operation));
    for (const route of routes) assert.ok(documented.has(route), `${route} is mounted but not in the OpenAPI document`);
  });

  test('without a key every /v1 operation is 401', async () => {
    for (const { operation } of await operations()) {
      if (!rules.has(operation)) continue;
      const answer = await send(undefined, await requests[operation]!.call('own'));
      assert.equal(answer.status, 401, operation);
    }
  });

  test('an unrestricted key passes where it holds the scope, and is 403 missing_scope for each scope it lacks', async () => {
    for (const [operation, rule] of rules) {
      const request = requests[operation]!;
      const answer = await send(keys.all, await request.call('own'));
      assert.equal(guardRefusal(answer), undefined, `${operation} with every scope: ${answer.status} ${JSON.stringify(answer.body)}`);
      assert.ok(answer.status < 500, `${operation}: ${answer.status}`);
      for (const scope of scopes) {
        const single = await send(keys.single[scope], await request.call('own'));
        if (rule.scope === null || rule.scope === scope) {
          assert.equal(
            guardRefusal(single),
            undefined,
            `${operation} with ${scope} alone: ${single.status} ${JSON.stringify(single.body)}`,
          );
          assert.ok(single.status < 500, `${operation} with ${scope}: ${single.status}`);
        } else {
          assert.equal(single.status, 403, `${operation} with ${scope} alone`);
          assert.equal(single.body.type, '/problems/forbidden');
          assert.deepEqual([single.body.reason, single.body.required_scope], ['missing_scope', rule.scope], operation);
        }
      }
    }
  });

  test("a key restricted to acme: 403 where the rule forbids it, acme's own succeed, and another customer's look absent", async () => {
    for (const [operation, rule] of rules) {
      const request = requests[operation]!;
      const own = await send(keys.acme, await request.call('own'));
      if (rule.restricted === 'forbidden') {
        assert.equal(own.status, 403, operation);
        assert.equal(own.body.reason, 'customer_restricted', operation);
        continue;
      }
      assert.equal(guardRefusal(own), undefined, `${operation}: ${own.status} ${JSON.stringify(own.body)}`);
      if (rule.restricted === 'shared') {
        assert.equal(
          own.status,
          (await send(keys.all, await request.call('own'))).status,
          `${operation} answers a restricted key as any other`,
        );
        continue;
      }
      if (request.ownRefusal) assert.equal(own.body.reason, request.ownRefusal, operation);
      else assert.ok(own.status < 300, `${operation} on its own customer: ${own.status} ${JSON.stringify(own.body)}`);
      if (request.onlyAcme) {
        assert.ok(request.onlyAcme(own.body), `${operation} lists only acme's`);
        assert.ok(!request.onlyAcme(await ok(keys.all, await request.call('own'))), `${operation}: an unrestricted key also sees globex's`);
        continue;
      }
      const other = await send(keys.acme, await request.call('other'));
      const absent = await send(keys.acme, await request.call('absent'));
      assert.deepEqual(observable(other), observable(absent), `${operation}: another customer's answer differs from a missing one's`);
      assert.notEqual(other.status, 403, operation);
      // The other customer's resource is there: an unrestricted key gets it.
      const unrestricted = await send(keys.all, await request.call('other'));
      assert.notDeepEqual(
        observable(unrestricted),
        observable(await send(keys.all, await request.call('absent'))),
        `${operation}: globex's fixture exists`,
      );
    }
  });
});

describe('a portal session goes through the same policy, open only where its portal column says', () => {
  test("a session of acme: 403 portal_read_only outside the portal's reads; inside them, confined to acme like a restricted key", async () => {
    const rules = Object.values(policy).flatMap((actions) => Object.values(actions) as Rule[]);
    const created = await ok(keys.all, { method: 'POST', path: '/v1/portal-sessions', body: { customer: 'acme' } });
    const token = new URL(created.url as string).hash.slice(1);
    assert.ok(rules.some((r) => r.portal) && rules.some((r) => !r.portal));
    for (const rule of rules) {
      const request = requests[rule.operation]!;
      const own = await send(token, await request.call('own'));
      if (!rule.portal) {
        assert.equal(own.status, 403, rule.operation);
        assert.equal(own.body.reason, 'portal_read_only', rule.operation);
        continue;
      }
      assert.equal(guardRefusal(own), undefined, `${rule.operation}: ${own.status} ${JSON.stringify(own.body)}`);
      if (rule.operation === 'GET /v1/portal-sessions/current') {
        assert.deepEqual([own.status, own.body.id, own.body.customer], [200, created.id, 'acme']);
        continue;
      }
      assert.equal(own.status, (await send(keys.acme, await request.call('own'))).status, `${rule.operation} answers as to acme's key`);
      if (rule.restricted !== 'own_customer' || request.onlyAcme) continue;
      const other = await send(token, await request.call('other'));
      assert.deepEqual(observable(other), observable(await send(token, await request.call('absent'))), rule.operation);
    }
  });
});

describe('a key never grants, to another key or to itself, more than it holds', () => {
  const day = 86_400_000;
  let grantor: { secret: string; id: string };
  let expiry: Date;
  const as = (method: string, path: string, body?: unknown) => send(grantor.secret, { method, path, body });
  const refused = (answer: Answer, reason: string) => {
    assert.equal(answer.status, 403, JSON.stringify(answer.body));
    assert.equal(answer.body.type, '/problems/forbidden');
    assert.equal(answer.body.reason, reason);
  };

  before(async () => {
    expiry = new Date(Date.now() + day);
    grantor = await t.issue({ scopes: ['keys:admin', 'usage:read'], ratePerSecond: 10, burst: 20, expiresAt: expiry });
  });

  test('creating: scopes, rate, burst and expiry above its own are refused; omitted ones default to its own at most', async () => {
    const base = { name: 'child', scopes: ['usage:read'] };
    refused(await as('POST', '/v1/keys', { ...base, scopes: ['usage:read', 'billing:read'] }), 'scope_escalation');
    refused(await as('POST', '/v1/keys', { ...base, rate_limit: { per_second: 11, burst: 20 } }), 'rate_escalation');
    refused(await as('POST', '/v1/keys', { ...base, rate_limit: { per_second: 10, burst: 21 } }), 'rate_escalation');
    refused(await as('POST', '/v1/keys', { ...base, expires_at: null }), 'expiry_escalation');
    refused(await as('POST', '/v1/keys', { ...base, expires_at: new Date(expiry.getTime() + 1000).toISOString() }), 'expiry_escalation');

    const defaults = await as('POST', '/v1/keys', base);
    assert.equal(defaults.status, 201);
    assert.deepEqual(defaults.body.rate_limit, { per_second: 10, burst: 20 });
    assert.equal(defaults.body.expires_at, expiry.toISOString());
    const within = await as('POST', '/v1/keys', {
      ...base,
      rate_limit: { per_second: 5, burst: 0 },
      expires_at: new Date(expiry.getTime() - day / 2).toISOString(),
    });
    assert.equal(within.status, 201);
    assert.deepEqual(within.body.rate_limit, { per_second: 5, burst: 0 });
    const { rows } = await db.pool.query('select count(*)::int as n from api_keys where created_by = $1', [`key:${grantor.id}`]);
    assert.equal(rows[0].n, 2, 'a refused key is not stored');
  });

  test('patching: not even itself upward', async () => {
    const self = `/v1/keys/${grantor.id}`;
    refused(await as('PATCH', self, { scopes: ['keys:admin', 'usage:read', 'billing:admin'] }), 'scope_escalation');
    refused(await as('PATCH', self, { rate_limit: { per_second: 1000, burst: 20 } }), 'rate_escalation');
    refused(await as('PATCH', self, { expires_at: null }), 'expiry_escalation');
    refused(await as('PATCH', self, { expires_at: new Date(expiry.getTime() + day).toISOString() }), 'expiry_escalation');
    const other = await t.issue({ scopes: ['usage:read'] });
    refused(await as('PATCH', `/v1/keys/${other.id}`, { rate_limit: { per_second: 11, burst: 0 } }), 'rate_escalation');
    refused(await as('PATCH', `/v1/keys/${other.id}`, { expires_at: null }), 'expiry_escalation');

    const key = await ok(keys.all, { method: 'GET', path: self });
    assert.deepEqual(
      [key.scopes, key.rate_limit, key.expires_at],
      [['keys:admin', 'usage:read'], { per_second: 10, burst: 20 }, expiry.toISOString()],
    );
    // Downward is fine, and binds at once: the lowered key can no longer grant its old rate.
    assert.equal((await as('PATCH', self, { rate_limit: { per_second: 8, burst: 20 } })).status, 200);
    refused(
      await as('POST', '/v1/keys', { name: 'x', scopes: ['usage:read'], rate_limit: { per_second: 10, burst: 20 } }),
      'rate_escalation',
    );
    assert.equal((await as('PATCH', self, { name: 'renamed' })).status, 200);
  });

  test("rotating: the successor has the old key's powers, so the rotating key must hold them all", async () => {
    const faster = await t.issue({ scopes: ['usage:read'], ratePerSecond: 1000, burst: 0 });
    refused(await as('POST', `/v1/keys/${faster.id}/rotate`, {}), 'rate_escalation');
    const wider = await t.issue({ scopes: ['usage:read', 'events:write'], ratePerSecond: 1, burst: 0 });
    refused(await as('POST', `/v1/keys/${wider.id}/rotate`, {}), 'scope_escalation');
    const modest = await t.issue({ scopes: ['usage:read'], ratePerSecond: 1, burst: 0 });
    refused(await as('POST', `/v1/keys/${modest.id}/rotate`, { expires_at: null }), 'expiry_escalation');
    const rotated = await as('POST', `/v1/keys/${modest.id}/rotate`, {});
    assert.equal(rotated.status, 201);
    assert.equal(rotated.body.expires_at, expiry.toISOString(), 'without expires_at the successor expires with the rotating key');
    assert.equal((await as('GET', `/v1/keys/${faster.id}`)).body.status, 'active', 'a refused rotation changes nothing');
  });

  test('a customer-restricted key keeps its restriction', async () => {
    const acmeAdmin = await t.issue({ scopes: ['keys:admin', 'usage:read'], customer: 'acme' });
    const minted = await send(acmeAdmin.secret, { method: 'POST', path: '/v1/keys', body: { name: 'x', scopes: ['usage:read'] } });
    assert.equal(minted.body.customer, 'acme');
    refused(
      await send(acmeAdmin.secret, { method: 'POST', path: '/v1/keys', body: { name: 'x', scopes: ['usage:read'], customer: null } }),
      'customer_escalation',
    );
    const rotated = await send(acmeAdmin.secret, { method: 'POST', path: `/v1/keys/${acmeAdmin.id}/rotate`, body: { grace_seconds: 60 } });
    assert.equal(rotated.body.customer, 'acme');
  });
});

describe('a conflict shows the existing resource only to a key that may read it', () => {
  test('customers, meters and plans', async () => {
    const adminOnly = keys.single['billing:admin'];
    const conflicts: Call[] = [
      { method: 'POST', path: '/v1/customers', body: { external_id: 'globex', name: 'Renamed', currency: 'EUR' } },
      {
        method: 'POST',
        path: '/v1/meters',
        body: { code: 'api_calls', name: 'Other', event_type: 'api_call', aggregation: 'count', filter: {} },
      },
      { method: 'POST', path: '/v1/plans', body: { ...plan, name: 'Other' } },
    ];
    for (const call of conflicts) {
      const blind = await send(adminOnly, call);
      assert.equal(blind.status, 409, call.path);
      assert.equal(blind.body.existing, undefined, `${call.path} shows a billing:admin key what it may not read`);
      const reader = await send(keys.all, call);
      assert.equal(reader.status, 409);
      assert.ok(reader.body.existing, `${call.path} shows a reader what it conflicts with`);
    }
  });
});

describe('customer and meter creation are audited', () => {
  test('by the key that asked, with what was created; a repeated create records nothing', async () => {
    const creator = await t.issue({ scopes: ['billing:admin'] });
    const customer = { external_id: 'initech', name: 'Initech', currency: 'USD' };
    const meter = { code: 'storage_gb', name: 'Storage', event_type: 'storage', aggregation: 'max', value_property: 'gb', filter: {} };
    for (const [path, body] of [
      ['/v1/customers', customer],
      ['/v1/meters', meter],
    ] as const) {
      assert.equal((await send(creator.secret, { method: 'POST', path, body })).status, 201);
      assert.equal((await send(creator.secret, { method: 'POST', path, body })).status, 200);
    }
    const { rows } = await db.pool.query(
      `select actor, action, subject_id, details from audit_log where action in ('customer.created', 'meter.created') and actor = $1 order by id`,
      [`key:${creator.id}`],
    );
    const { rows: ids } = await db.pool.query<{ id: string }>(`select id from customers where external_id = 'initech'`);
    assert.deepEqual(rows, [
      {
        actor: `key:${creator.id}`,
        action: 'customer.created',
        subject_id: ids[0]!.id,
        details: { external_id: 'initech', name: 'Initech', currency: 'USD' },
      },
      {
        actor: `key:${creator.id}`,
        action: 'meter.created',
        subject_id: 'storage_gb',
        details: { name: 'Storage', event_type: 'storage', aggregation: 'max', value_property: 'gb', filter: {} },
      },
    ]);
  });
});
