import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { defaultActivityInfo, MockActivityEnvironment } from '@temporalio/testing';
import { createDraftInvoice } from '../../src/activities/draft-invoice';
import { createFinalizeInvoice } from '../../src/activities/finalize-invoice';
import { createPlan } from '../../src/plans/store';
import { createSubscription } from '../../src/subscriptions/store';
import { systemClock } from '../../src/clock';
import { planSchema } from '../../src/domain/plan';
import { createCustomer } from '../../src/customers/store';
import { createMeter } from '../../src/meters/store';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';
import { storeEvents } from '../support/usage-events';

/*
 * Invoices on a real Postgres: the draft and finalize activities (run in an activity context,
 * as the worker runs them), the immutability the database enforces, late usage as adjustment
 * lines on the next invoice, and the finance API.
 */
let db: TestDatabase;
let app: KeysTestApp;
let admin: string;
let acmeReader: string;
let ids: { acme: string; globex: string; calls: string; storage: string; subscription: string };

const P1 = { start: new Date('2026-01-01T00:00:00Z'), end: new Date('2026-02-01T00:00:00Z') };
const P2 = { start: P1.end, end: new Date('2026-03-01T00:00:00Z') };
const activity = new MockActivityEnvironment({ ...defaultActivityInfo, workflowExecution: { workflowId: 'billing/acme', runId: 'run-1' } });
const draft = (period: { start: Date; end: Date }, lookbackInvoices = 3): Promise<{ invoiceId: string }> =>
  activity.run(createDraftInvoice({ pool: db.pool, clock: systemClock, lookbackInvoices }), {
    subscriptionId: ids.subscription,
    customerId: ids.acme,
    planCode: 'metered',
    periodStart: period.start.toISOString(),
    periodEnd: period.end.toISOString(),
  });
const finalize = (invoiceId: string): Promise<{ status: string }> =>
  activity.run(createFinalizeInvoice({ pool: db.pool, clock: systemClock }), { invoiceId });

const events = (customerId: string, meterId: string, from: Date, count: number, value: string | null = null) =>
  storeEvents(db.pool, { customerId, meterId, from, count, value });

before(async () => {
  db = await createTestDatabase();
  app = await startKeysApp(db);
  const acme = await createCustomer(db.pool, { external_id: 'acme', name: 'Acme', currency: 'USD' }, 'system');
  const globex = await createCustomer(db.pool, { external_id: 'globex', name: 'Globex', currency: 'USD' }, 'system');
  const calls = await createMeter(
    db.pool,
    { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} },
    'system',
  );
  const storage = await createMeter(
    db.pool,
    { code: 'storage_gb', name: 'Storage', event_type: 'storage', aggregation: 'max', value_property: 'gb', filter: {} },
    'system',
  );
  const plan = planSchema({ knownMeters: new Set(['api_calls', 'storage_gb']) }).parse({
    id: 'metered',
    name: 'Metered',
    currency: 'USD',
    base_fee: '5.00',
    charges: [
      {
        meter: 'api_calls',
        model: 'graduated',
        tiers: [
          { up_to: '1000', unit_price: '0.002' },
          { up_to: null, unit_price: '0.001' },
        ],
      },
      { meter: 'storage_gb', model: 'per_unit', unit_price: '0.25' },
    ],
    interval: { kind: 'calendar_month' },
  });
  await createPlan(db.pool, plan, 'system');
  const sub = await createSubscription(db.pool, { customerId: acme.customer.id, planCode: 'metered', anchor: P1.start, actor: 'system' });
  assert.ok(sub.created);
  ids = {
    acme: acme.customer.id,
    globex: globex.customer.id,
    calls: calls.meter.id,
    storage: storage.meter.id,
    subscription: sub.subscription.id,
  };
  admin = (await app.issue({ scopes: ['billing:read', 'billing:admin'] })).secret;
  acmeReader = (await app.issue({ scopes: ['billing:read'], customer: 'acme' })).secret;
});
after(async () => {
  await app?.close();
  await db?.drop();
});

const call = async (method: string, path: string, key = admin, body?: unknown) => {
  const res = await app.call(method, path, key, body);
  return { status: res.status, contentType: res.headers.get('content-type'), body: (await res.json()) as any };
};
const count = async (sql: string, params: unknown[] = []) =>
  Number((await db.pool.query<{ n: string }>(`select count(*) as n from ${sql}`, params)).rows[0]!.n);

describe('invoices', () => {
  let p1: string;

  test('a draft is priced from the raw events of [start, end) only; drafting again rewrites the same invoice', async () => {
    await events(ids.acme, ids.calls, new Date(P1.start.getTime() - 10_000), 5); // previous period
    await events(ids.acme, ids.calls, P1.start, 1500);
    await events(ids.acme, ids.storage, P1.start, 3, '12.5');
    await events(ids.acme, ids.calls, new Date(P1.end.getTime() - 1), 1); // the last instant still counts…
    await events(ids.acme, ids.calls, P1.end, 7); // …the end does not
    await events(ids.globex, ids.calls, P1.start, 40); // another customer

    const first = await draft(P1);
    p1 = first.invoiceId;
    const res = await call('GET', `/v1/invoices/${p1}`);
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'draft');
    assert.deepEqual(res.body.usage, { api_calls: '1501', storage_gb: '12.5' });
    // 5.00 + (1000 × 0.002 + 501 × 0.001 = 2.501 → 2.50) + 12.5 × 0.25 = 3.125 → 3.13
    assert.deepEqual(
      res.body.lines.map((l: any) => [l.type, l.meter, l.quantity, l.exact_amount, l.amount]),
      [
        ['base_fee', null, null, '5', '5.00'],
        ['usage', 'api_calls', '1501', '2.501', '2.50'],
        ['usage', 'storage_gb', '12.5', '3.125', '3.13'],
      ],
    );
    assert.equal(res.body.total, '10.63');
    assert.equal(res.body.lines[1].breakdown.length, 2);

    assert.deepEqual(await draft(P1), first);
    assert.equal(await count('invoices'), 1);
    assert.equal(await count('invoice_lines'), 3);
  });

  test('finalizing freezes it: twice is once, and the database refuses any change to amounts or lines', async () => {
    assert.equal((await finalize(p1)).status, 'finalized');
    assert.equal((await finalize(p1)).status, 'finalized');
    assert.equal(await count(`audit_log where subject_id = $1 and action = 'invoice.finalized'`, [p1]), 1);
    assert.equal((await draft(P1)).invoiceId, p1, 'a late re-run of the draft returns the finalized invoice untouched');
    await assert.rejects(db.pool.query(`update invoices set total = 1 where id = $1`, [p1]), /immutable/);
    await assert.rejects(db.pool.query(`update invoice_lines set amount = 1 where invoice_id = $1`, [p1]), /immutable/);
    await assert.rejects(db.pool.query(`delete from invoices where id = $1`, [p1]), /never deleted/);
    await assert.rejects(db.pool.query(`update invoices set status = 'draft' where id = $1`, [p1]), /cannot go from finalized to draft/);
    assert.equal((await call('GET', `/v1/invoices/${p1}`)).body.total, '10.63');
  });

  test('late usage for a finalized period is billed on the next invoice as an adjustment line naming that period', async () => {
    await events(ids.acme, ids.calls, new Date(P1.start.getTime() + 60_000), 600); // late: 2101 calls now → 3.101 → 3.10 (+0.60)
    await events(ids.acme, ids.calls, P2.start, 10); // with the 7 stored at P2's start above: 17 calls
    const p2 = (await draft(P2)).invoiceId;
    const { body } = await call('GET', `/v1/invoices/${p2}`);
    const adjustment = body.lines.find((l: any) => l.type === 'adjustment');
    assert.deepEqual(
      { meter: adjustment.meter, quantity: adjustment.quantity, amount: adjustment.amount, adjusts: adjustment.adjusts },
      {
        meter: 'api_calls',
        quantity: '600',
        amount: '0.60',
        adjusts: { invoice_id: p1, period_start: P1.start.toISOString(), period_end: P1.end.toISOString() },
      },
    );
    assert.match(adjustment.description, /Late usage for 2026-01-01T00:00:00.000Z – 2026-02-01T00:00:00.000Z/);
    // 5.00 + 0.03 (17 calls: 0.034) + 0 storage + 0.60
    assert.equal(body.total, '5.63');
    assert.equal((await call('GET', `/v1/invoices/${p1}`)).body.total, '10.63', 'the finalized invoice did not change');

    // Redrafting P2 does not count its own adjustment as already billed; finalized, it is not adjusted again.
    assert.equal((await draft(P2)).invoiceId, p2);
    assert.equal((await call('GET', `/v1/invoices/${p2}`)).body.total, '5.63');
    await finalize(p2);
    const p3 = (await draft({ start: P2.end, end: new Date('2026-04-01T00:00:00Z') })).invoiceId;
    assert.equal((await call('GET', `/v1/invoices/${p3}`)).body.lines.filter((l: any) => l.type === 'adjustment').length, 0);
    // With no lookback, late usage is never adjusted.
    await events(ids.acme, ids.calls, new Date(P1.start.getTime() + 120_000), 1000);
    const p3Again = await draft({ start: P2.end, end: new Date('2026-04-01T00:00:00Z') }, 0);
    assert.equal((await call('GET', `/v1/invoices/${p3Again.invoiceId}`)).body.lines.filter((l: any) => l.type === 'adjustment').length, 0);
    // With the lookback back, those 1,000 late calls are adjusted…
    assert.equal(
      (
        await call('GET', `/v1/invoices/${(await draft({ start: P2.end, end: new Date('2026-04-01T00:00:00Z') })).invoiceId}`)
      ).body.lines.filter((l: any) => l.type === 'adjustment').length,
      1,
    );
    // …unless reconciliation has corrected P1 with a credit note: then it alone settles P1, never both.
    await db.pool.query(
      `insert into reconciliation_runs (id, period_start, period_end, status, started_by, created_at, updated_at) values ('r1', $1, $2, 'running', 'test', now(), now())`,
      [P1.start, P1.end],
    );
    const { rows } = await db.pool.query<{ id: string }>(
      `insert into reconciliation_findings (run_id, key, kind, customer_id, invoice_id, description, expected, actual, correction, currency, resolution, resolved_at, resolved_by, created_at)
       values ('r1', 'k', 'amount_mismatch', $1, $2, 'late usage', '{}', '{}', -1.00, 'USD', 'corrected', now(), 'test', now()) returning id`,
      [ids.acme, p1],
    );
    await db.pool.query(
      `insert into credit_notes (invoice_id, finding_id, amount, currency, reason, created_at) values ($1, $2, -1.00, 'USD', 'late usage', now())`,
      [p1, rows[0]!.id],
    );
    const afterCredit = await draft({ start: P2.end, end: new Date('2026-04-01T00:00:00Z') });
    assert.equal(
      (await call('GET', `/v1/invoices/${afterCredit.invoiceId}`)).body.lines.filter((l: any) => l.type === 'adjustment').length,
      0,
    );
  });

  test('finance API: list with filters and pages, customer-restricted keys see their own, void with a reason', async () => {
    const all = await call('GET', '/v1/invoices?limit=2');
    assert.equal(all.status, 200);
    assert.deepEqual(
      all.body.data.map((i: any) => i.period.start),
      ['2026-03-01T00:00:00.000Z', '2026-02-01T00:00:00.000Z'],
    );
    const rest = await call('GET', `/v1/invoices?limit=2&after=${all.body.next_cursor}`);
    assert.deepEqual(
      rest.body.data.map((i: any) => i.period.start),
      ['2026-01-01T00:00:00.000Z'],
    );
    assert.equal(rest.body.next_cursor, null);
    assert.equal((await call('GET', '/v1/invoices?status=finalized')).body.data.length, 2);
    assert.equal((await call('GET', '/v1/invoices?customer=globex')).body.data.length, 0);
    assert.equal((await call('GET', '/v1/invoices', acmeReader)).body.data.length, 3);
    // Another customer is, to a restricted key, like one that does not exist: an empty page.
    const foreign = await call('GET', '/v1/invoices?customer=globex', acmeReader);
    assert.equal(foreign.status, 200);
    assert.deepEqual(foreign.body, (await call('GET', '/v1/invoices?customer=nobody', acmeReader)).body);
    assert.deepEqual(foreign.body.data, []);
    assert.equal((await call('POST', `/v1/invoices/${p1}/void`, acmeReader, { reason: 'x' })).status, 403);

    for (const [path, body, status] of [
      [`/v1/invoices/${p1}/void`, {}, 400],
      [`/v1/invoices/${p1}/void`, { reason: ' ' }, 400],
      [`/v1/invoices/${p1}/void`, { reason: 'ok', extra: true }, 400],
      ['/v1/invoices/not-a-uuid/void', { reason: 'ok' }, 400],
      ['/v1/invoices/00000000-0000-4000-8000-000000000000/void', { reason: 'ok' }, 404],
    ] as const) {
      const res = await call('POST', path, admin, body);
      assert.equal(res.status, status, `${path} ${JSON.stringify(body)}`);
      assert.match(res.contentType ?? '', /^application\/problem\+json/);
    }
    assert.equal((await call('GET', '/v1/invoices?after=nonsense')).status, 400);
    assert.equal(await count(`invoices where status = 'void'`), 0);

    const voided = await call('POST', `/v1/invoices/${p1}/void`, admin, { reason: 'Duplicate account' });
    assert.equal(voided.status, 200);
    assert.equal(voided.body.status, 'void');
    assert.equal(voided.body.void_reason, 'Duplicate account');
    assert.equal((await call('POST', `/v1/invoices/${p1}/void`, admin, { reason: 'again' })).body.void_reason, 'Duplicate account');
    assert.equal(await count(`audit_log where subject_id = $1 and action = 'invoice.voided'`, [p1]), 1);

    await db.pool.query(`update invoices set status = 'paid', paid_at = now() where status = 'finalized'`);
    const paid = (await call('GET', '/v1/invoices?status=paid')).body.data[0];
    assert.equal((await call('POST', `/v1/invoices/${paid.id}/void`, admin, { reason: 'no' })).status, 409);
  });
});
