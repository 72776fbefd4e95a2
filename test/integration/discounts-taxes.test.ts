import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { defaultActivityInfo, MockActivityEnvironment } from '@temporalio/testing';
import { createDraftInvoice } from '../../src/activities/draft-invoice';
import { createFinalizeInvoice } from '../../src/activities/finalize-invoice';
import { systemClock } from '../../src/clock';
import { couponsToApply } from '../../src/coupons/store';
import { CreditGrantInputSchema } from '../../src/credits/input';
import { CreditService } from '../../src/credits/service';
import { createCustomer } from '../../src/customers/store';
import { planSchema } from '../../src/domain/plan';
import { createMeter } from '../../src/meters/store';
import { createPlan } from '../../src/plans/store';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import { startProviderSimulator, type ProviderSimulator } from '../../src/provider/simulator';
import { findDiscrepancies } from '../../src/reconciliations/discrepancies';
import { createSubscription } from '../../src/subscriptions/store';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';
import { storeEvents } from '../support/usage-events';

/*
 * Coupons and tax rates through the API, invoices drafted and finalized by the real activities on
 * a real Postgres: discount and tax lines, net/tax/gross, periods used counted by finalized
 * invoice only, the audit trail, and reconciliation repricing discounts and taxes.
 */
let db: TestDatabase;
let app: KeysTestApp;
let provider: ProviderSimulator;
let admin: string;
let acmeReader: string;
let ids: { acme: string; globex: string; calls: string; storage: string; subscription: string };

const month = (m: number) => new Date(Date.UTC(2026, m - 1, 1));
const P = (m: number) => ({ start: month(m), end: month(m + 1) });
const activity = new MockActivityEnvironment({ ...defaultActivityInfo, workflowExecution: { workflowId: 'billing/acme', runId: 'run-1' } });
const draft = (period: { start: Date; end: Date }): Promise<{ invoiceId: string }> =>
  activity.run(createDraftInvoice({ pool: db.pool, clock: systemClock, lookbackInvoices: 3 }), {
    subscriptionId: ids.subscription,
    customerId: ids.acme,
    planCode: 'taxed',
    periodStart: period.start.toISOString(),
    periodEnd: period.end.toISOString(),
  });
const finalize = (invoiceId: string): Promise<{ status: string }> =>
  activity.run(createFinalizeInvoice({ pool: db.pool, clock: systemClock }), { invoiceId });

before(async () => {
  db = await createTestDatabase();
  app = await startKeysApp(db);
  provider = await startProviderSimulator({ port: 0 });
  const acme = await createCustomer(db.pool, { external_id: 'acme', name: 'Acme', currency: 'USD' }, 'system');
  const globex = await createCustomer(db.pool, { external_id: 'globex', name: 'Globex', currency: 'EUR' }, 'system');
  const calls = await createMeter(
    db.pool,
    { code: 'api_calls', name: 'Calls', event_type: 'api_call', aggregation: 'count', filter: {} },
    'system',
  );
  const storage = await createMeter(
    db.pool,
    { code: 'storage_gb', name: 'Storage', event_type: 'storage', aggregation: 'max', value_property: 'gb', filter: {} },
    'system',
  );
  const plan = planSchema({ knownMeters: new Set(['api_calls', 'storage_gb']) }).parse({
    id: 'taxed',
    name: 'Taxed',
    currency: 'USD',
    base_fee: '10.00',
    charges: [
      { meter: 'api_calls', model: 'per_unit', unit_price: '0.01' },
      { meter: 'storage_gb', model: 'per_unit', unit_price: '1.00' },
    ],
    interval: { kind: 'calendar_month' },
  });
  await createPlan(db.pool, plan, 'system');
  const sub = await createSubscription(db.pool, { customerId: acme.customer.id, planCode: 'taxed', anchor: month(1), actor: 'system' });
  assert.ok(sub.created);
  ids = {
    acme: acme.customer.id,
    globex: globex.customer.id,
    calls: calls.meter.id,
    storage: storage.meter.id,
    subscription: sub.subscription.id,
  };
  admin = (await app.issue({ scopes: ['billing:read', 'billing:admin'] })).secret;
  acmeReader = (await app.issue({ scopes: ['billing:read', 'billing:admin'], customer: 'acme' })).secret;
});
after(async () => {
  await app?.close();
  await provider?.close();
  await db?.drop();
});

const call = async (method: string, path: string, key = admin, body?: unknown) => {
  const res = await app.call(method, path, key, body);
  return { status: res.status, contentType: res.headers.get('content-type'), body: (await res.json()) as any };
};
const count = async (sql: string, params: unknown[] = []) =>
  Number((await db.pool.query<{ n: string }>(`select count(*) as n from ${sql}`, params)).rows[0]!.n);
const summary = (invoice: any) => ({
  lines: invoice.lines.map((l: any) => [l.type, l.meter, l.amount, l.coupon?.code ?? l.tax?.code ?? null]),
  net: invoice.net,
  tax: invoice.tax,
  gross: invoice.gross,
  total: invoice.total,
});

const HALF_CALLS = {
  code: 'HALF-CALLS',
  name: 'Half off calls',
  discount: { type: 'percentage', percent_off: '50' },
  duration: { kind: 'repeating', periods: 2 },
  meters: ['api_calls'],
};
const FIVE_OFF = {
  code: 'FIVE',
  name: 'Five off',
  discount: { type: 'fixed_amount', amount_off: '5.00', currency: 'USD' },
  duration: { kind: 'once' },
};

describe('coupons and taxes', () => {
  let p1: string;

  test('admins define coupons and rates; bad input changes nothing and says why', async () => {
    const created = await call('POST', '/v1/coupons', admin, HALF_CALLS);
    assert.equal(created.status, 201);
    assert.equal((await call('POST', '/v1/coupons', admin, HALF_CALLS)).status, 200);
    assert.equal((await call('POST', '/v1/coupons', admin, { ...HALF_CALLS, name: 'other' })).status, 409);
    assert.equal((await call('POST', '/v1/coupons', admin, FIVE_OFF)).status, 201);
    const bad = await call('POST', '/v1/coupons', admin, {
      ...FIVE_OFF,
      code: 'BAD',
      discount: { type: 'percentage', percent_off: '150' },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.contentType ?? '', /^application\/problem\+json/);
    assert.match(JSON.stringify(bad.body), /at most 100/);
    assert.equal((await call('POST', '/v1/coupons', admin, { ...FIVE_OFF, code: 'NOMETER', meters: ['nope'] })).status, 422);
    assert.equal((await call('POST', '/v1/coupons', acmeReader, { ...FIVE_OFF, code: 'MINE' })).status, 403);
    assert.equal((await call('POST', '/v1/coupons', admin, { ...FIVE_OFF, code: 'BASE-ONLY', base_fee: false })).status, 400);
    assert.equal(await count('coupons'), 2);

    assert.equal((await call('POST', '/v1/customers/acme/coupons', admin, { coupon: 'HALF-CALLS' })).status, 201);
    assert.equal((await call('POST', '/v1/customers/acme/coupons', admin, { coupon: 'HALF-CALLS' })).status, 200);
    assert.equal((await call('POST', '/v1/customers/acme/coupons', admin, { coupon: 'FIVE' })).status, 201);
    const eur = await call('POST', '/v1/customers/globex/coupons', admin, { coupon: 'FIVE' });
    assert.deepEqual([eur.status, eur.body.reason], [422, 'currency_mismatch']);
    assert.equal((await call('POST', '/v1/customers/acme/coupons', admin, { coupon: 'NONE' })).status, 422);
    assert.equal((await call('POST', '/v1/customers/nobody/coupons', admin, { coupon: 'FIVE' })).status, 404);
    assert.equal(await count('coupon_applications'), 2);
    assert.equal(await count(`audit_log where action = 'coupon.applied'`), 2);

    assert.equal((await call('POST', '/v1/customers/acme/tax-rates', admin, { code: 'vat', name: 'VAT', percentage: '20' })).status, 201);
    const storageTax = { code: 'storage', name: 'Storage levy', percentage: '10', meter: 'storage_gb' };
    assert.equal((await call('POST', '/v1/customers/acme/tax-rates', admin, storageTax)).status, 201);
    assert.equal((await call('POST', '/v1/customers/acme/tax-rates', admin, storageTax)).status, 200);
    const mixed = await call('POST', '/v1/customers/acme/tax-rates', admin, { code: 'gst', name: 'GST', percentage: '5', inclusive: true });
    assert.deepEqual([mixed.status, mixed.body.reason], [409, 'tax_mode_conflict']);
    assert.equal((await call('POST', '/v1/customers/acme/tax-rates', admin, { code: 'x', name: 'X', percentage: '100' })).status, 400);
    assert.equal(await count('tax_rates'), 2);

    // A key restricted to acme reads its own coupons and rates; another customer is absent.
    const own = await call('GET', '/v1/customers/acme/coupons', acmeReader);
    assert.deepEqual(
      own.body.data.map((a: any) => [a.coupon.code, a.periods_used]),
      [
        ['HALF-CALLS', 0],
        ['FIVE', 0],
      ],
    );
    assert.equal((await call('GET', '/v1/customers/globex/tax-rates', acmeReader)).status, 404);
    assert.equal((await call('GET', '/v1/customers/acme/tax-rates', acmeReader)).body.data.length, 2);
  });

  test('the invoice: charges, then discounts, then taxes on the net; net, tax and gross add up', async () => {
    await storeEvents(db.pool, { customerId: ids.acme, meterId: ids.calls, from: P(1).start, count: 1000 });
    await storeEvents(db.pool, { customerId: ids.acme, meterId: ids.storage, from: P(1).start, count: 1, value: '5' });
    p1 = (await draft(P(1))).invoiceId;
    assert.deepEqual(await draft(P(1)), { invoiceId: p1 }, 'drafting again rewrites the same draft');
    const { body } = await call('GET', `/v1/invoices/${p1}`);
    // 10.00 + 10.00 + 5.00; HALF-CALLS −5.00 on calls; FIVE −5.00 on the base fee (first in line order);
    // VAT 20 % of 15.00 = 3.00; storage levy 10 % of 5.00 = 0.50.
    assert.deepEqual(summary(body), {
      lines: [
        ['base_fee', null, '10.00', null],
        ['usage', 'api_calls', '10.00', null],
        ['usage', 'storage_gb', '5.00', null],
        ['discount', 'api_calls', '-5.00', 'HALF-CALLS'],
        ['discount', null, '-5.00', 'FIVE'],
        ['tax', null, '3.00', 'vat'],
        ['tax', 'storage_gb', '0.50', 'storage'],
      ],
      net: '15.00',
      tax: '3.50',
      gross: '18.50',
      total: '18.50',
    });
    assert.deepEqual(body.lines[5].tax, {
      rate_id: body.lines[5].tax.rate_id,
      code: 'vat',
      percentage: '20',
      inclusive: false,
      base: '15.00',
    });
    assert.equal(await count('coupon_redemptions'), 0, 'a draft uses no coupon period');
    // …but reserves it: another invoice drafted meanwhile does not get the once-only FIVE too
    // (its base fee would take it; HALF-CALLS finds no calls in P2 yet).
    assert.deepEqual(
      (await call('GET', '/v1/customers/acme/coupons')).body.data.map((a: any) => [a.coupon.code, a.periods_used, a.periods_reserved]),
      [
        ['HALF-CALLS', 0, 1],
        ['FIVE', 0, 1],
      ],
    );
    const early = (await draft(P(2))).invoiceId;
    assert.deepEqual(
      (await call('GET', `/v1/invoices/${early}`)).body.lines.filter((l: any) => l.type === 'discount').map((l: any) => l.coupon.code),
      [],
    );
  });

  test('finalizing uses a period of each coupon once, audited; the next invoices see what is left', async () => {
    await finalize(p1);
    await finalize(p1);
    assert.equal(await count('coupon_redemptions where invoice_id = $1', [p1]), 2);
    assert.equal(await count(`audit_log where action = 'coupon.redeemed'`), 2);
    assert.deepEqual(
      (await call('GET', '/v1/customers/acme/coupons')).body.data.map((a: any) => [a.coupon.code, a.periods_used]),
      [
        ['HALF-CALLS', 1],
        ['FIVE', 1],
      ],
    );

    await storeEvents(db.pool, { customerId: ids.acme, meterId: ids.calls, from: P(2).start, count: 200 });
    const p2 = (await draft(P(2))).invoiceId;
    await draft(P(2));
    // FIVE was once; HALF-CALLS has its second period: 2.00 → −1.00. VAT 20 % of 11.00.
    assert.deepEqual(summary((await call('GET', `/v1/invoices/${p2}`)).body), {
      lines: [
        ['base_fee', null, '10.00', null],
        ['usage', 'api_calls', '2.00', null],
        ['usage', 'storage_gb', '0.00', null],
        ['discount', 'api_calls', '-1.00', 'HALF-CALLS'],
        ['tax', null, '2.20', 'vat'],
        ['tax', 'storage_gb', '0.00', 'storage'],
      ],
      net: '11.00',
      tax: '2.20',
      gross: '13.20',
      total: '13.20',
    });
    await finalize(p2);
    const p3 = (await draft(P(3))).invoiceId;
    assert.equal((await call('GET', `/v1/invoices/${p3}`)).body.lines.filter((l: any) => l.type === 'discount').length, 0);
    // A void invoice collected nothing: the period it used is given back.
    assert.equal((await call('POST', `/v1/invoices/${p2}/void`, admin, { reason: 'test' })).status, 200);
    assert.deepEqual(
      (await call('GET', '/v1/customers/acme/coupons')).body.data.map((a: any) => a.periods_used),
      [1, 1],
    );
  });

  test('inclusive rates: the tax is extracted from the prices and does not add to the total', async () => {
    await call('POST', '/v1/customers/acme/tax-rates/vat/archive');
    await call('POST', '/v1/customers/acme/tax-rates/storage/archive');
    assert.equal((await call('POST', '/v1/customers/acme/tax-rates/vat/archive')).status, 404);
    assert.equal(
      (await call('POST', '/v1/customers/acme/tax-rates', admin, { code: 'vat', name: 'VAT', percentage: '20', inclusive: true })).status,
      201,
    );
    const p3 = (await draft(P(3))).invoiceId;
    // 10.00 contains 20 %: 10 × 20 / 120 = 1.666… → 1.67; net 8.33.
    const body = (await call('GET', `/v1/invoices/${p3}`)).body;
    assert.deepEqual([body.net, body.tax, body.gross, body.total], ['8.33', '1.67', '10.00', '10.00']);
    assert.equal(body.lines.find((l: any) => l.type === 'tax').tax.inclusive, true);
    await finalize(p3);
  });

  test('reconciliation reprices discounts and taxes, and reports a stored line that differs', async () => {
    const deps = {
      db: db.pool,
      provider: createHttpPaymentProvider({ baseUrl: provider.url, timeoutMs: 5_000 }),
      clock: systemClock,
      lookbackInvoices: 3,
    };
    const scope = { start: P(1).start, end: P(4).start, customerId: ids.acme, asOf: P(4).start };
    const ofInterest = (found: { kind: string }[]) =>
      found.filter((f) => ['discount_mismatch', 'tax_mismatch', 'amount_mismatch', 'usage_mismatch'].includes(f.kind));
    assert.deepEqual(ofInterest((await findDiscrepancies(deps, scope)).found), []);

    // A tax line changed behind the invoice path's back (the guard trigger off, as a bad migration might).
    await db.pool.query('alter table invoice_lines disable trigger invoice_lines_guard');
    await db.pool.query(`update invoice_lines set amount = 3.10 where invoice_id = $1 and type = 'tax' and amount = 3.00`, [p1]);
    await db.pool.query('alter table invoice_lines enable trigger invoice_lines_guard');
    const found = ofInterest((await findDiscrepancies(deps, scope)).found);
    assert.deepEqual(
      found.map((f: any) => [f.kind, f.invoiceId, f.subject, f.expected, f.actual]),
      [['tax_mismatch', p1, 'vat', { amount: '3.00' }, { amount: '3.10' }]],
    );
  });

  test('a coupon targeting the base fee is stored, read back and compared with its target', async () => {
    const platform = {
      code: 'PLATFORM',
      name: 'Platform fee 20 % off',
      discount: { type: 'percentage', percent_off: '20' },
      duration: { kind: 'forever' },
      base_fee: true,
    };
    const created = await call('POST', '/v1/coupons', admin, platform);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.base_fee, true);
    assert.equal((await call('POST', '/v1/coupons', admin, platform)).status, 200, 'the same terms again');
    const { base_fee: _target, ...untargeted } = platform;
    assert.equal((await call('POST', '/v1/coupons', admin, untargeted)).status, 409, 'without the target: other terms');
    assert.equal((await call('GET', '/v1/coupons/PLATFORM')).body.base_fee, true);

    // A tax rate on the base fee alone, stored and read back; with a meter as well it is refused.
    const levy = { code: 'levy', name: 'Platform levy', percentage: '10', base_fee: true };
    const added = await call('POST', '/v1/customers/globex/tax-rates', admin, levy);
    assert.equal(added.status, 201, JSON.stringify(added.body));
    assert.deepEqual([added.body.base_fee, added.body.meter], [true, null]);
    assert.equal((await call('POST', '/v1/customers/globex/tax-rates', admin, levy)).status, 200, 'the same terms again');
    assert.equal((await call('POST', '/v1/customers/globex/tax-rates', admin, { ...levy, code: 'both', meter: 'api_calls' })).status, 400);
  });

  test("a coupon applied to one subscription discounts only that subscription's invoices", async () => {
    const forever = { code: 'LOYAL', name: 'Loyal', discount: { type: 'percentage', percent_off: '5' }, duration: { kind: 'forever' } };
    assert.equal((await call('POST', '/v1/coupons', admin, forever)).status, 201);
    const applied = await call('POST', '/v1/customers/acme/coupons', admin, { coupon: 'LOYAL', subscription_id: ids.subscription });
    assert.deepEqual([applied.status, applied.body.subscription_id], [201, ids.subscription]);
    const foreign = await call('POST', '/v1/customers/globex/coupons', admin, { coupon: 'LOYAL', subscription_id: ids.subscription });
    assert.deepEqual([foreign.status, foreign.body.reason], [422, 'unknown_subscription']);
    const codes = async (subscriptionId: string) =>
      (await couponsToApply(db.pool, ids.acme, subscriptionId, undefined)).map((c) => c.coupon.code);
    assert.ok((await codes(ids.subscription)).includes('LOYAL'));
    assert.ok(!(await codes(randomUUID())).includes('LOYAL'));
  });
});

describe('one finalized invoice through every step: price, coupon, tax, credits, amount due', () => {
  test('a coupon, a tax rate and a credit grant: every line, and credits pay the gross including tax', async () => {
    const initech = await createCustomer(db.pool, { external_id: 'initech', name: 'Initech', currency: 'USD' }, 'system');
    const sub = await createSubscription(db.pool, {
      customerId: initech.customer.id,
      planCode: 'taxed',
      anchor: month(1),
      actor: 'system',
    });
    assert.ok(sub.created);
    const quarter = {
      code: 'QUARTER',
      name: 'Quarter off',
      discount: { type: 'percentage', percent_off: '25' },
      duration: { kind: 'forever' },
    };
    assert.equal((await call('POST', '/v1/coupons', admin, quarter)).status, 201);
    assert.equal((await call('POST', '/v1/customers/initech/coupons', admin, { coupon: 'QUARTER' })).status, 201);
    assert.equal(
      (await call('POST', '/v1/customers/initech/tax-rates', admin, { code: 'vat', name: 'VAT', percentage: '20' })).status,
      201,
    );
    // No expiry: nothing to schedule.
    const credits = new CreditService({
      pool: db.pool,
      clock: systemClock,
      provider: createHttpPaymentProvider({ baseUrl: provider.url, timeoutMs: 2000 }),
      timers: { schedule: () => Promise.resolve() },
    });
    const grant = CreditGrantInputSchema.parse({ reference: 'prepaid', source: 'promotional', currency: 'USD', amount: '20.00' });
    assert.ok((await credits.grant('cli', 'initech', grant)).ok);
    await storeEvents(db.pool, { customerId: initech.customer.id, meterId: ids.calls, from: P(1).start, count: 1000 });

    const { invoiceId }: { invoiceId: string } = await activity.run(
      createDraftInvoice({ pool: db.pool, clock: systemClock, lookbackInvoices: 3 }),
      {
        subscriptionId: sub.subscription.id,
        customerId: initech.customer.id,
        planCode: 'taxed',
        periodStart: P(1).start.toISOString(),
        periodEnd: P(1).end.toISOString(),
      },
    );
    assert.equal((await finalize(invoiceId)).status, 'finalized');
    const { body } = await call('GET', `/v1/invoices/${invoiceId}`);
    // 10.00 base + 10.00 calls + 0.00 storage; 25 % per group: −2.50 and −2.50; VAT 20 % of 15.00 =
    // 3.00; gross 18.00, all of it paid by the 20.00 of credit (more than the 15.00 net: the tax too).
    assert.deepEqual(summary(body), {
      lines: [
        ['base_fee', null, '10.00', null],
        ['usage', 'api_calls', '10.00', null],
        ['usage', 'storage_gb', '0.00', null],
        ['discount', null, '-2.50', 'QUARTER'],
        ['discount', 'api_calls', '-2.50', 'QUARTER'],
        ['tax', null, '3.00', 'vat'],
        ['credit', null, '-18.00', null],
      ],
      net: '15.00',
      tax: '3.00',
      gross: '18.00',
      total: '0.00',
    });
    const ledger = await credits.ledger('cli', 'initech', { limit: 10 });
    assert.ok(ledger.ok);
    assert.deepEqual(
      ledger.value.map((e) => [e.kind, e.amount, e.invoiceId, e.balanceAfter]),
      [
        ['grant', '20.00', null, '20.00'],
        ['drawdown', '-18.00', invoiceId, '2.00'],
      ],
    );
    const balance = await credits.balance('cli', 'initech');
    assert.ok(balance.ok);
    assert.equal(balance.value.balance, '2.00');
  });
});
