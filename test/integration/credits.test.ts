import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { defaultActivityInfo, MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { createDraftInvoice } from '../../src/activities/draft-invoice';
import { createFinalizeInvoice } from '../../src/activities/finalize-invoice';
import { createReconcileActivities } from '../../src/activities/reconcile';
import { systemClock } from '../../src/clock';
import type { CreditBalanceWatcher } from '../../src/credits/balance-watcher';
import { CreditGrantInputSchema } from '../../src/credits/input';
import { CreditService } from '../../src/credits/service';
import { temporalCreditExpiryTimers } from '../../src/credits/temporal-expiry-timers';
import { createCustomer } from '../../src/customers/store';
import { planSchema } from '../../src/domain/plan';
import { InvoiceService } from '../../src/invoices/service';
import { getInvoice } from '../../src/invoices/store';
import { createMeter } from '../../src/meters/store';
import { createPlan } from '../../src/plans/store';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import type { PaymentProvider } from '../../src/provider/payment-provider';
import { startProviderSimulator, type ProviderSimulator } from '../../src/provider/simulator';
import { createSubscription } from '../../src/subscriptions/store';
import { creditExpiryWorkflowIdFor } from '../../src/workflows/credit-expiry';
import { freePort } from '../../scripts/free-port';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';
import { localEnvironment } from '../support/temporal';
import { storeEvents } from '../support/usage-events';

/*
 * Prepaid credits on a real Postgres, a real Temporal server (expiry timers are started there)
 * and the payment-provider simulator: top-ups through the API, the append-only ledger, drawdown
 * at finalization (idempotent), reversal on void, credit_only shortfalls, automatic top-up and
 * reconciliation of the ledger.
 */
let db: TestDatabase;
let env: TestWorkflowEnvironment;
let sim: ProviderSimulator;
let provider: PaymentProvider;
let app: KeysTestApp;
let admin: string;
let acmeAdmin: string;
let ids: Record<'acme' | 'globex' | 'initech' | 'hooli' | 'calls', string>;
const subscriptions: Record<string, string> = {};

const P1 = { start: new Date('2026-01-01T00:00:00Z'), end: new Date('2026-02-01T00:00:00Z') };
const P2 = { start: P1.end, end: new Date('2026-03-01T00:00:00Z') };
const activity = new MockActivityEnvironment({ ...defaultActivityInfo, workflowExecution: { workflowId: 'billing/acme', runId: 'run-1' } });

async function draft(customer: 'acme' | 'initech', plan: string, period: { start: Date; end: Date }): Promise<string> {
  const drafted: { invoiceId: string } = await activity.run(
    createDraftInvoice({ pool: db.pool, clock: systemClock, lookbackInvoices: 0 }),
    {
      subscriptionId: subscriptions[customer]!,
      customerId: ids[customer],
      planCode: plan,
      periodStart: period.start.toISOString(),
      periodEnd: period.end.toISOString(),
    },
  );
  return drafted.invoiceId;
}
const finalize = (invoiceId: string): Promise<{ status: string; total: string }> =>
  activity.run(createFinalizeInvoice({ pool: db.pool, clock: systemClock }), { invoiceId });
const credits = (watcher?: CreditBalanceWatcher) =>
  new CreditService({
    pool: db.pool,
    clock: systemClock,
    provider,
    timers: temporalCreditExpiryTimers({ client: env.client, taskQueue: 'credits-test' }),
    ...(watcher ? { watcher } : {}),
  });

before(async () => {
  db = await createTestDatabase();
  env = await localEnvironment();
  sim = await startProviderSimulator({ port: await freePort() });
  provider = createHttpPaymentProvider({ baseUrl: sim.url, timeoutMs: 5000 });
  app = await startKeysApp(db, {
    billing: { client: env.client, taskQueue: 'credits-test', allowedLatenessMs: 0, dunning: [], usageReportIntervalMs: 300_000 },
    provider,
  });
  const customer = async (external_id: string) =>
    (await createCustomer(db.pool, { external_id, name: external_id, currency: 'USD' }, 'system')).customer.id;
  const calls = await createMeter(
    db.pool,
    { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} },
    'system',
  );
  ids = {
    acme: await customer('acme'),
    globex: await customer('globex'),
    initech: await customer('initech'),
    hooli: await customer('hooli'),
    calls: calls.meter.id,
  };
  const plan = (id: string, extra: object) =>
    planSchema({ knownMeters: new Set(['api_calls']) }).parse({
      id,
      name: id,
      currency: 'USD',
      charges: [{ meter: 'api_calls', model: 'per_unit', unit_price: '0.01' }],
      interval: { kind: 'calendar_month' },
      ...extra,
    });
  await createPlan(db.pool, plan('metered', { base_fee: '5.00' }), 'system');
  await createPlan(db.pool, plan('prepaid', { settlement: 'credit_only' }), 'system');
  for (const [name, planCode] of [
    ['acme', 'metered'],
    ['initech', 'prepaid'],
  ] as const) {
    const sub = await createSubscription(db.pool, { customerId: ids[name], planCode, anchor: P1.start, actor: 'system' });
    assert.ok(sub.created);
    subscriptions[name] = sub.subscription.id;
  }
  admin = (await app.issue({ scopes: ['billing:read', 'billing:admin'] })).secret;
  acmeAdmin = (await app.issue({ scopes: ['billing:read', 'billing:admin'], customer: 'acme' })).secret;
});
after(async () => {
  await app?.close();
  await sim?.close();
  await env?.teardown();
  await db?.drop();
});

const call = async (method: string, path: string, body?: unknown, key = admin) => {
  const res = await app.call(method, path, key, body);
  return { status: res.status, body: (await res.json()) as any };
};
const count = async (sql: string, params: unknown[] = []) =>
  Number((await db.pool.query<{ n: string }>(`select count(*) as n from ${sql}`, params)).rows[0]!.n);
const injectFault = (fault: object) =>
  fetch(`${sim.url}/_sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(fault) });

const grants = {
  spring: { reference: 'spring-promo', source: 'promotional', currency: 'USD', amount: '5.00', expires_at: '2027-03-01T00:00:00Z' },
  welcome: { reference: 'welcome', source: 'promotional', currency: 'USD', amount: '10.00', expires_at: '2027-06-01T00:00:00Z' },
  order: { reference: 'order-1', source: 'purchased', currency: 'USD', amount: '50.00', priority: 1 },
};

describe('top-ups', () => {
  test('a promotional grant is credited once per reference, and its expiry timer is started on Temporal', async () => {
    const first = await call('POST', '/v1/customers/acme/credits', grants.spring);
    assert.equal(first.status, 201);
    assert.equal(first.body.status, 'active');
    assert.equal(first.body.remaining, '5.00');
    const again = await call('POST', '/v1/customers/acme/credits', grants.spring);
    assert.equal(again.status, 200);
    assert.equal(again.body.id, first.body.id);
    assert.equal(await count(`credit_ledger_entries where grant_id = $1`, [first.body.id]), 1);
    const timer = await env.client.workflow.getHandle(creditExpiryWorkflowIdFor(first.body.id)).describe();
    assert.equal(timer.status.name, 'RUNNING');

    const reused = await call('POST', '/v1/customers/acme/credits', { ...grants.spring, amount: '6.00' });
    assert.equal(reused.status, 409);
    assert.equal(reused.body.reason, 'reference_reused');
    assert.equal((await call('POST', '/v1/customers/acme/credits', grants.welcome)).status, 201);
  });

  test('bad input changes nothing: sub-cent amounts, unknown fields, an expiry in the past, free credit by a restricted key', async () => {
    const before = await count('credit_grants');
    const precise = await call('POST', '/v1/customers/acme/credits', { ...grants.order, reference: 'x', amount: '1.005' });
    assert.equal(precise.status, 400);
    assert.match(JSON.stringify(precise.body.errors), /at most 2 decimal places for USD/);
    assert.equal((await call('POST', '/v1/customers/acme/credits', { ...grants.order, reference: 'x', bonus: true })).status, 400);
    const past = await call('POST', '/v1/customers/acme/credits', {
      ...grants.spring,
      reference: 'old',
      expires_at: '2020-01-01T00:00:00Z',
    });
    assert.equal(past.status, 422);
    assert.equal(past.body.reason, 'expiry_in_past');
    const free = await call('POST', '/v1/customers/acme/credits', { ...grants.spring, reference: 'self' }, acmeAdmin);
    assert.equal(free.status, 403);
    assert.equal(free.body.reason, 'promotional_restricted');
    const other = await call('POST', '/v1/customers/globex/credits', { ...grants.order, reference: 'nosy' }, acmeAdmin);
    assert.equal(other.status, 404);
    assert.equal(await count('credit_grants'), before);
  });

  test('a purchase is charged through the provider once, under a key derived from the grant', async () => {
    const bought = await call('POST', '/v1/customers/acme/credits', grants.order, acmeAdmin);
    assert.equal(bought.status, 201);
    assert.equal(bought.body.status, 'active');
    assert.match(bought.body.provider_charge_id, /^ch_/);
    assert.equal((await call('POST', '/v1/customers/acme/credits', grants.order)).status, 200);
    const charges = await provider.listCharges({ invoiceId: `credit-grant-${bought.body.id}` });
    assert.deepEqual(
      charges.map((c) => [c.status, c.amountMinor, c.idempotencyKey]),
      [['succeeded', '5000', `meterflow-credit-grant-${bought.body.id}`]],
    );
    assert.equal(await count(`audit_log where subject_id = $1 and action = 'credit.purchased'`, [bought.body.id]), 1);
  });

  test('a declined purchase credits nothing; a lost provider answer is 503 and repeating the request completes it', async () => {
    assert.equal((await injectFault({ match: { customerId: ids.globex }, fault: 'decline', declineCode: 'card_declined' })).status, 201);
    const declined = await call('POST', '/v1/customers/globex/credits', { ...grants.order, reference: 'g-1' });
    assert.equal(declined.status, 409);
    assert.equal(declined.body.reason, 'purchase_declined');
    assert.equal(declined.body.decline_code, 'card_declined');
    assert.equal(
      (await call('POST', '/v1/customers/globex/credits', { ...grants.order, reference: 'g-1' })).body.reason,
      'purchase_declined',
    );
    assert.equal(await count(`credit_ledger_entries where customer_id = $1`, [ids.globex]), 0);

    await injectFault({ match: { customerId: ids.hooli }, fault: '5xx', times: 1 });
    const lost = await call('POST', '/v1/customers/hooli/credits', { ...grants.order, reference: 'h-1' });
    assert.equal(lost.status, 503);
    assert.equal(lost.body.reason, 'provider_unavailable');
    const retried = await call('POST', '/v1/customers/hooli/credits', { ...grants.order, reference: 'h-1' });
    assert.equal(retried.status, 200);
    assert.equal(retried.body.status, 'active');
    assert.equal((await provider.listCharges({ customerId: ids.hooli })).filter((c) => c.status === 'succeeded').length, 1);
  });

  test('the same purchase sent twice at once charges and credits once', async () => {
    const order = { ...grants.order, reference: 'h-race', amount: '3.00' };
    const answers = await Promise.all([1, 2].map(() => call('POST', '/v1/customers/hooli/credits', order)));
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 201]);
    assert.equal(answers[0]!.body.id, answers[1]!.body.id);
    assert.equal((await provider.listCharges({ invoiceId: `credit-grant-${answers[0]!.body.id}` })).length, 1);
    assert.equal(await count(`credit_ledger_entries where grant_id = $1`, [answers[0]!.body.id]), 1);
  });

  test('balance and ledger: the balance is the sum of the entries, each entry carries the running balance', async () => {
    const balance = await call('GET', '/v1/customers/acme/credits');
    assert.equal(balance.status, 200);
    assert.equal(balance.body.currency, 'USD');
    assert.equal(balance.body.balance, '65.00');
    assert.equal(balance.body.grants.length, 3);
    const ledger = await call('GET', '/v1/customers/acme/credits/ledger?limit=2');
    assert.deepEqual(
      ledger.body.data.map((e: any) => [e.kind, e.amount, e.balance_after]),
      [
        ['grant', '5.00', '5.00'],
        ['grant', '10.00', '15.00'],
      ],
    );
    const rest = await call('GET', `/v1/customers/acme/credits/ledger?after=${ledger.body.next_cursor}`);
    assert.deepEqual(
      rest.body.data.map((e: any) => [e.kind, e.amount, e.balance_after]),
      [['grant', '50.00', '65.00']],
    );
    assert.equal((await call('GET', '/v1/customers/acme/credits/ledger?after=abc')).status, 400);
  });

  test('the ledger and grants are append-only: the database refuses UPDATE, DELETE and TRUNCATE', async () => {
    await assert.rejects(db.pool.query(`update credit_ledger_entries set amount = 1000`), /append-only/);
    await assert.rejects(db.pool.query(`delete from credit_ledger_entries`), /append-only/);
    await assert.rejects(db.pool.query(`truncate credit_ledger_entries`), /append-only/);
    await assert.rejects(db.pool.query(`update credit_grants set amount = 1000`), /immutable/);
    await assert.rejects(db.pool.query(`delete from credit_grants`), /never deleted/);
  });
});

describe('drawdown at finalization', () => {
  let p1: string;

  test('an invoice paid partly by credits: drawn in priority, expiry, age order, as one negative credit line; twice is once', async () => {
    await storeEvents(db.pool, { customerId: ids.acme, meterId: ids.calls, from: P1.start, count: 7500 });
    p1 = await draft('acme', 'metered', P1);
    const first = await finalize(p1);
    assert.deepEqual([first.status, first.total], ['finalized', '15.00']);
    const again = await finalize(p1);
    assert.deepEqual([again.status, again.total], ['finalized', '15.00']);

    const invoice = await call('GET', `/v1/invoices/${p1}`);
    // 5.00 base fee + 7500 × 0.01 = 80.00, of which credits pay 65.00.
    assert.deepEqual(
      invoice.body.lines.map((l: any) => [l.type, l.amount]),
      [
        ['base_fee', '5.00'],
        ['usage', '75.00'],
        ['credit', '-65.00'],
      ],
    );
    assert.equal(invoice.body.total, '15.00');
    const { rows } = await db.pool.query<{ reference: string; amount: string }>(
      `select g.reference, e.amount::text from credit_ledger_entries e join credit_grants g on g.id = e.grant_id
        where e.invoice_id = $1 and e.kind = 'drawdown' order by e.id`,
      [p1],
    );
    assert.deepEqual(
      rows.map((r) => [r.reference, r.amount]),
      [
        ['spring-promo', '-5.00'],
        ['welcome', '-10.00'],
        ['order-1', '-50.00'],
      ],
    );
    assert.equal((await call('GET', '/v1/customers/acme/credits')).body.balance, '0.00');
    assert.equal(await count(`audit_log where action = 'credit.drawn_down'`), 3);
  });

  test('voiding the invoice gives its drawdowns back with void entries, once', async () => {
    const service = new InvoiceService(db.pool, systemClock);
    assert.ok((await service.void('cli', p1, 'wrong plan')).ok);
    assert.ok((await service.void('cli', p1, 'wrong plan')).ok);
    assert.equal(await count(`credit_ledger_entries where invoice_id = $1 and kind = 'void'`, [p1]), 3);
    assert.equal((await call('GET', '/v1/customers/acme/credits')).body.balance, '65.00');
  });

  test('automatic top-up after a drawdown leaves the balance below the threshold: purchased once per invoice', async () => {
    const set = await call('PUT', '/v1/customers/acme/credits/auto-top-up', { currency: 'USD', threshold: '20.00', amount: '25.00' });
    assert.equal(set.status, 200);
    assert.equal(set.body.enabled, true);
    await storeEvents(db.pool, { customerId: ids.acme, meterId: ids.calls, from: P2.start, count: 5000 });
    const p2 = await draft('acme', 'metered', P2);
    assert.equal((await finalize(p2)).total, '0.00');
    assert.equal((await call('GET', '/v1/customers/acme/credits')).body.balance, '10.00');

    const invoice = (await getInvoice(db.pool, p2))!;
    // Charged and credited, but the billing workflow could not be told: a fault to retry, not a rejection.
    const unreachable: CreditBalanceWatcher = { grew: () => Promise.reject(new Error('Temporal is down')) };
    await assert.rejects(credits(unreachable).autoTopUp(invoice, 'system'), /could not be told/);
    const first = await credits().autoTopUp(invoice, 'system');
    assert.ok(first.ok);
    assert.equal(first.value.outcome, 'topped_up');
    assert.equal(first.ok && 'balance' in first.value && first.value.balance, '35.00');
    const second = await credits().autoTopUp(invoice, 'system');
    assert.deepEqual(second, first);
    const topUps = await provider.listCharges({ customerId: ids.acme });
    assert.equal(topUps.filter((c) => c.amountMinor === '2500').length, 1);
  });

  test('credit_only: what credits do not cover is invoiced as overage and flagged in the audit trail', async () => {
    assert.ok((await credits().grant('cli', 'initech', CreditGrantInputSchema.parse({ ...grants.welcome, expires_at: null }))).ok);
    await storeEvents(db.pool, { customerId: ids.initech, meterId: ids.calls, from: P1.start, count: 2000 });
    const invoiceId = await draft('initech', 'prepaid', P1);
    assert.equal((await finalize(invoiceId)).total, '10.00');
    const { rows } = await db.pool.query<{ details: any }>(
      `select details from audit_log where action = 'invoice.credit_shortfall' and subject_id = $1`,
      [invoiceId],
    );
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.details.shortfall, '10.00');
  });
});

describe('the CLI', () => {
  /** `meterflow credits …` in its own process, on this database, the simulator and this Temporal server. */
  const cli = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        ['bin/meterflow.js', 'credits', ...args, '--json'],
        {
          cwd: path.resolve(import.meta.dirname, '../..'),
          env: {
            ...process.env,
            DATABASE_URL: db.url,
            PROVIDER_URL: sim.url,
            TEMPORAL_ADDRESS: env.address,
            TEMPORAL_TASK_QUEUE: 'credits-test',
          },
        },
        (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  test('tops up through the provider, repeats safely, and shows the balance and ledger', async () => {
    const args = ['grant', '--customer', 'hooli', '--reference', 'cli-1', '--amount', '12.34', '--currency', 'USD'];
    const first = await cli(args);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual([JSON.parse(first.stdout).created, JSON.parse(first.stdout).status], [true, 'active']);
    assert.equal(JSON.parse((await cli(args)).stdout).created, false);
    const balance = await cli(['balance', '--customer', 'hooli']);
    assert.equal(balance.code, 0, balance.stderr);
    assert.equal(JSON.parse(balance.stdout).balance, '65.34');
    const listed = await cli(['ledger', '--customer', 'hooli']);
    assert.equal(listed.code, 0, listed.stderr);
    const ledger = JSON.parse(listed.stdout);
    assert.deepEqual(
      ledger.data.map((e: any) => e.balance_after),
      ['50.00', '53.00', '65.34'],
    );
    const bad = await cli(['grant', '--customer', 'hooli', '--reference', 'cli-2', '--amount', '1.001', '--currency', 'USD']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /at most 2 decimal places/);
  });

  test('credits void: voids what is left of a grant, once', async () => {
    const granted = await cli([
      'grant',
      '--customer',
      'hooli',
      '--reference',
      'cli-void',
      '--amount',
      '1.00',
      '--currency',
      'USD',
      '--promotional',
    ]);
    assert.equal(granted.code, 0, granted.stderr);
    const grantId: string = JSON.parse(granted.stdout).id;
    const voided = await cli(['void', '--customer', 'hooli', '--grant', grantId]);
    assert.equal(voided.code, 0, voided.stderr);
    assert.deepEqual([JSON.parse(voided.stdout).kind, JSON.parse(voided.stdout).amount], ['grant_void', '-1.00']);
    const again = await cli(['void', '--customer', 'hooli', '--grant', grantId]);
    assert.equal(JSON.parse(again.stdout).id, JSON.parse(voided.stdout).id);
    assert.equal(JSON.parse((await cli(['balance', '--customer', 'hooli'])).stdout).balance, '65.34');
  });
});

describe('voiding a grant', () => {
  test('what is left leaves the balance with one grant_void entry, audited; what was drawn stays drawn; twice is once', async () => {
    const granted = await call('POST', '/v1/customers/globex/credits', {
      reference: 'to-void',
      source: 'promotional',
      currency: 'USD',
      amount: '8.00',
    });
    assert.equal(granted.status, 201, JSON.stringify(granted.body));
    const grantId: string = granted.body.id;
    // 5.00 base fee + 100 × 0.01 = 6.00, drawn from the grant: 2.00 left of it.
    const sub = await createSubscription(db.pool, { customerId: ids.globex, planCode: 'metered', anchor: P1.start, actor: 'system' });
    assert.ok(sub.created);
    await storeEvents(db.pool, { customerId: ids.globex, meterId: ids.calls, from: P1.start, count: 100 });
    const drafted: { invoiceId: string } = await activity.run(
      createDraftInvoice({ pool: db.pool, clock: systemClock, lookbackInvoices: 0 }),
      {
        subscriptionId: sub.subscription.id,
        customerId: ids.globex,
        planCode: 'metered',
        periodStart: P1.start.toISOString(),
        periodEnd: P1.end.toISOString(),
      },
    );
    const finalized = await finalize(drafted.invoiceId);
    assert.deepEqual([finalized.status, finalized.total], ['finalized', '0.00']);

    const path = `/v1/customers/globex/credits/grants/${grantId}/void`;
    assert.equal((await call('POST', path, undefined, acmeAdmin)).status, 403, "a customer's own key may not void");
    const voided = await call('POST', path);
    assert.equal(voided.status, 201, JSON.stringify(voided.body));
    assert.deepEqual(
      [voided.body.kind, voided.body.amount, voided.body.invoice_id, voided.body.balance_after],
      ['grant_void', '-2.00', null, '0.00'],
    );
    const again = await call('POST', path);
    assert.equal(again.status, 200);
    assert.equal(again.body.id, voided.body.id);
    assert.equal(await count(`credit_ledger_entries where grant_id = $1 and kind = 'grant_void'`, [grantId]), 1);
    assert.deepEqual(
      (
        await db.pool.query<{ kind: string; amount: string }>(
          `select kind, amount::text from credit_ledger_entries where grant_id = $1 order by id`,
          [grantId],
        )
      ).rows.map((e) => [e.kind, e.amount]),
      [
        ['grant', '8.00'],
        ['drawdown', '-6.00'],
        ['grant_void', '-2.00'],
      ],
    );
    const audit = await db.pool.query<{ details: any; before: any; after: any }>(
      `select details, before, after from audit_log where action = 'credit.grant_voided' and subject_id = $1`,
      [grantId],
    );
    assert.equal(audit.rows.length, 1);
    assert.deepEqual(
      [audit.rows[0]!.details.amount, audit.rows[0]!.details.refunded, audit.rows[0]!.before.remaining],
      ['-2.00', false, '2.00'],
    );
    // The balance is still the sum of the entries; the voided grant has nothing left to draw.
    const balance = await call('GET', '/v1/customers/globex/credits');
    assert.equal(balance.body.balance, '0.00');
    assert.deepEqual(balance.body.grants, []);

    // Nothing left to void: the declined purchase (never credited), an unknown grant, another customer's grant.
    const declined = (
      await db.pool.query<{ id: string }>(`select id from credit_grants where customer_id = $1 and reference = 'g-1'`, [ids.globex])
    ).rows[0]!.id;
    const nothing = await call('POST', `/v1/customers/globex/credits/grants/${declined}/void`);
    assert.deepEqual([nothing.status, nothing.body.reason], [409, 'nothing_to_void']);
    assert.equal((await call('POST', `/v1/customers/acme/credits/grants/${grantId}/void`)).status, 404);
    assert.equal((await call('POST', '/v1/customers/globex/credits/grants/not-a-uuid/void')).status, 400);
  });
});

describe('reconciliation of the ledger', () => {
  const reconcile = (runId: string) =>
    activity.run(
      createReconcileActivities({ pool: db.pool, clock: systemClock, provider, lookbackInvoices: 0, dunning: [] }).reconcilePeriod,
      {
        runId,
        periodStart: P1.start.toISOString(),
        periodEnd: P2.end.toISOString(),
        asOf: new Date().toISOString(),
        startedBy: 'test',
        autoApprove: false,
      },
    );
  const kinds = async (runId: string) =>
    (await db.pool.query<{ kind: string }>(`select kind from reconciliation_findings where run_id = $1 order by kind`, [runId])).rows.map(
      (r) => r.kind,
    );

  test('a consistent ledger, and invoices partly paid by credits, raise no finding', async () => {
    await reconcile('reconcile/credits-1');
    const { rows } = await db.pool.query(`select description from reconciliation_findings where run_id = 'reconcile/credits-1'`);
    assert.deepEqual(rows, []);
  });

  test('a drawdown left on a void invoice and a broken running balance are found', async () => {
    const client = await db.pool.connect();
    try {
      // Tampering as only a superuser could: the append-only trigger is bypassed for this session.
      await client.query(`set session_replication_role = replica`);
      await client.query(
        `delete from credit_ledger_entries where kind = 'void' and grant_id = (select id from credit_grants where reference = 'welcome' and customer_id = $1)`,
        [ids.acme],
      );
    } finally {
      await client.query(`set session_replication_role = origin`);
      client.release();
    }
    await reconcile('reconcile/credits-2');
    assert.deepEqual(await kinds('reconcile/credits-2'), ['credit_balance_mismatch', 'credit_drawdown_on_void_invoice']);
  });
});
