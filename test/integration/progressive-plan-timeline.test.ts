import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { defaultActivityInfo, MockActivityEnvironment } from '@temporalio/testing';
import { createDraftInterimInvoice } from '../../src/activities/draft-interim-invoice';
import { createDraftInvoice } from '../../src/activities/draft-invoice';
import { createFinalizeInvoice } from '../../src/activities/finalize-invoice';
import { systemClock } from '../../src/clock';
import { createCustomer } from '../../src/customers/store';
import { ZERO } from '../../src/domain/money';
import type { BillingInterval } from '../../src/domain/periods-schema';
import { planSchema } from '../../src/domain/plan';
import { getInvoice, type Invoice } from '../../src/invoices/store';
import { createMeter } from '../../src/meters/store';
import { createPlan } from '../../src/plans/store';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import { startProviderSimulator, type ProviderSimulator } from '../../src/provider/simulator';
import { findDiscrepancies } from '../../src/reconciliations/discrepancies';
import { cancelSubscription, changePlan, createSubscription, planTimelineOf } from '../../src/subscriptions/store';
import { freePort } from '../../scripts/free-port';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { oracleTotal, type NamedPlan } from '../support/plan-timeline-oracle';

/*
 * Progressive billing with a plan change, late events and a cancellation, through the real
 * activities on Postgres (interim draft, period draft, finalize), the real subscription store
 * (plan change, cancellation) and reconciliation: the period's invoices add up to the plan
 * timeline recomputed independently, no interim invoice bills past the cancellation whichever
 * of the two is recorded first, the period invoice is not negative, and reconciliation is clean.
 */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const interval: BillingInterval = { kind: 'duration', iso: 'PT1H' };
const catalog: NamedPlan[] = [
  { id: 'pp-basic', currency: 'USD', base_fee: '10.00', charges: [{ meter: 'pp_calls', model: 'per_unit', unit_price: '0.013' }] },
  {
    id: 'pp-pro',
    currency: 'USD',
    base_fee: '50.00',
    minimum_commitment: '80.00',
    charges: [
      {
        meter: 'pp_calls',
        model: 'graduated',
        tiers: [
          { up_to: '1000', unit_price: '0.02', flat_fee: '1.00' },
          { up_to: null, unit_price: '0.0125' },
        ],
      },
      { meter: 'pp_gb', model: 'package', package_size: '10', package_price: '0.50', free_units: '5' },
    ],
  },
];
const planNamed = (code: string) => catalog.find((p) => p.id === code)!;

let db: TestDatabase;
let simulator: ProviderSimulator;
const meterIds: Record<string, string> = {};
let eventIds = 0;

const activity = new MockActivityEnvironment({
  ...defaultActivityInfo,
  workflowExecution: { workflowId: 'billing/progressive', runId: 'r' },
});
const iso = (ms: number) => new Date(ms).toISOString();

before(async () => {
  [db, simulator] = await Promise.all([createTestDatabase(), startProviderSimulator({ port: await freePort() })]);
  const calls = await createMeter(
    db.pool,
    { code: 'pp_calls', name: 'Calls', event_type: 'pp_call', aggregation: 'count', filter: {} },
    'system',
  );
  const gb = await createMeter(
    db.pool,
    { code: 'pp_gb', name: 'GB', event_type: 'pp_gb', aggregation: 'sum', value_property: 'gb', filter: {} },
    'system',
  );
  meterIds.pp_calls = calls.meter.id;
  meterIds.pp_gb = gb.meter.id;
  const schema = planSchema({ knownMeters: new Set(['pp_calls', 'pp_gb']) });
  for (const plan of catalog) await createPlan(db.pool, schema.parse({ ...plan, name: plan.id, interval }), 'system');
});
after(async () => {
  await simulator?.close();
  await db?.drop();
});

/** One billing period of one customer, billed the way the workflow bills it, with what it stored kept for the oracle. */
async function subscriber(name: string, anchor: number) {
  const customer = await createCustomer(db.pool, { external_id: name, name, currency: 'USD' }, 'system');
  const customerId = customer.customer.id;
  const created = await createSubscription(db.pool, { customerId, planCode: 'pp-basic', anchor: new Date(anchor), actor: 'system' });
  assert.ok(created.created);
  const subscriptionId = created.subscription.id;
  const events: Array<{ at: number; meter: string; quantity: string }> = [];
  const invoices: Invoice[] = [];
  let sequence = 0;
  const finalize = async (invoiceId: string) => {
    await activity.run(createFinalizeInvoice({ pool: db.pool, clock: systemClock }), { invoiceId });
    const invoice = (await getInvoice(db.pool, invoiceId))!;
    invoices.push(invoice);
    return invoice;
  };
  return {
    customerId,
    subscriptionId,
    invoices,
    /** `count` calls (one event each), or `gb` of storage in one event, at `at`. */
    async store(at: number, meter: 'pp_calls' | 'pp_gb', quantity: number) {
      const count = meter === 'pp_calls' ? quantity : 1;
      await db.pool.query(
        `insert into usage_events (customer_short_id, event_id, meter_short_id, event_time, received_at, value, properties, timestamp_provided, late)
         select (select short_id from customers where id = $1::uuid), $2 || '-' || n, (select short_id from meters where id = $3::uuid), $4, now(), $5, '{}', true, false from generate_series(1, $6::int) n`,
        [customerId, `pp-${++eventIds}`, meterIds[meter], new Date(at), meter === 'pp_gb' ? String(quantity) : null, count],
      );
      events.push({ at, meter, quantity: String(quantity) });
    },
    async interim(until: number): Promise<Invoice> {
      const { invoiceId }: { invoiceId: string } = await activity.run(createDraftInterimInvoice({ pool: db.pool, clock: systemClock }), {
        subscriptionId,
        customerId,
        planCode: 'pp-basic',
        periodStart: iso(anchor),
        until: iso(until),
        sequence: ++sequence,
        threshold: String(sequence),
      });
      return finalize(invoiceId);
    },
    async close(end: number): Promise<Invoice> {
      const { invoiceId }: { invoiceId: string } = await activity.run(
        createDraftInvoice({ pool: db.pool, clock: systemClock, lookbackInvoices: 3 }),
        {
          subscriptionId,
          customerId,
          planCode: 'pp-basic',
          periodStart: iso(anchor),
          periodEnd: iso(end),
        },
      );
      return finalize(invoiceId);
    },
    /** The sum of the period's invoices against the oracle on the timeline as recorded. */
    async assertAddsUp(): Promise<void> {
      const found = (await planTimelineOf(db.pool, subscriptionId))!;
      const expected = oracleTotal(
        {
          anchor,
          interval,
          timeline: found.timeline,
          cancelAt: found.cancelAt?.getTime(),
          horizon: anchor + HOUR,
          events,
        },
        planNamed,
      );
      const sum = invoices.reduce((total, i) => total.plus(i.total), ZERO);
      assert.equal(sum.toFixed(2), expected.toFixed(2));
    },
    async discrepancies(): Promise<string[]> {
      const { found } = await findDiscrepancies(
        {
          db: db.pool,
          provider: createHttpPaymentProvider({ baseUrl: simulator.url, timeoutMs: 5000 }),
          clock: systemClock,
          lookbackInvoices: 3,
        },
        { start: new Date(anchor), end: new Date(anchor + HOUR), customerId, asOf: new Date(anchor + 2 * HOUR) },
      );
      return found.map((d) => `${d.kind}: ${d.description}`);
    },
  };
}

describe('progressive billing with plan changes and cancellation, on Postgres', () => {
  test('late events, an upgrade between interim invoices, and a cancellation recorded after a later cut', async () => {
    const t0 = Date.parse('2026-04-01T10:00:00Z');
    const s = await subscriber('pp-upgrade', t0);
    await s.store(t0 + 5 * MINUTE, 'pp_calls', 300);
    const first = await s.interim(t0 + 10 * MINUTE);
    assert.equal(first.total, '3.90'); // 300 × 0.013
    // Stored after interim #1 was cut, for a time before it: billed by the next invoice of the period.
    await s.store(t0 + 8 * MINUTE, 'pp_calls', 50);
    const upgraded = await changePlan(db.pool, s.subscriptionId, 'pp-pro', 'system', { scheduled: false, at: new Date(t0 + 20 * MINUTE) });
    assert.equal(upgraded.outcome, 'changed');
    await s.store(t0 + 25 * MINUTE, 'pp_calls', 2000);
    await s.store(t0 + 26 * MINUTE, 'pp_gb', 37.5);
    const second = await s.interim(t0 + 30 * MINUTE);
    // 350 × 0.013 = 4.55 on basic; on pro the shared ladder continues at unit 350: price(2350) − price(350) =
    // (1.00 + 20.00 + 16.875) − (1.00 + 7.00) = 29.875 → 29.88; 37.5 GB less 5 free = 4 packages of 10 at 0.50; less 3.90.
    assert.equal(second.total, '32.53');
    assert.deepEqual(
      second.lines.map((l) => [l.type, l.segment?.planCode ?? null, l.amount]),
      [
        ['usage', 'pp-basic', '4.55'],
        ['usage', 'pp-pro', '29.88'],
        ['usage', 'pp-pro', '2.00'],
        ['interim_billed', null, '-3.90'],
      ],
    );
    // The cancellation was asked for at 10:28, but the workflow had already cut interim #2 at 10:30: billing ends at the cut.
    const canceled = await cancelSubscription(db.pool, s.subscriptionId, new Date(t0 + 28 * MINUTE), 'system');
    assert.equal(canceled?.subscription.cancelAt?.toISOString(), iso(t0 + 30 * MINUTE));
    await s.store(t0 + 40 * MINUTE, 'pp_calls', 500); // after the end of billing: no invoice's
    const period = await s.close(t0 + 30 * MINUTE);
    assert.equal(period.usage.pp_calls, '2350', 'the 500 calls after the end of billing are not billed');
    assert.ok(Number(period.total) >= 0, `period invoice ${period.total}`);
    await s.assertAddsUp();
    assert.deepEqual(await s.discrepancies(), []);
  });

  test('a cancellation recorded before an interim invoice the workflow asks for later: the cut is the cancellation', async () => {
    const t0 = Date.parse('2026-04-01T10:00:00Z');
    const s = await subscriber('pp-cancel-first', t0);
    await s.store(t0 + 5 * MINUTE, 'pp_calls', 1200);
    await cancelSubscription(db.pool, s.subscriptionId, new Date(t0 + 15 * MINUTE), 'system');
    await s.store(t0 + 20 * MINUTE, 'pp_calls', 800); // after the cancellation
    // The workflow priced and cut at 10:30 before it heard of the cancellation.
    const interim = await s.interim(t0 + 30 * MINUTE);
    assert.equal(interim.periodEnd.toISOString(), iso(t0 + 15 * MINUTE));
    assert.equal(interim.total, '15.60'); // 1200 × 0.013: none of the 800 after the cancellation
    const period = await s.close(t0 + 15 * MINUTE);
    // A quarter of the 10.00 base fee; the calls were billed by the interim invoice.
    assert.equal(period.total, '2.50');
    await s.assertAddsUp();
    assert.deepEqual(await s.discrepancies(), []);
  });
});
