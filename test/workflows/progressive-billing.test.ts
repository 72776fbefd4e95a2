import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { WorkflowContinuedAsNewError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { freePort } from '../../scripts/free-port';
import { systemClock } from '../../src/clock';
import { createCustomer } from '../../src/customers/store';
import { interimBilledLine, totalOf } from '../../src/domain/interim-billing';
import { Decimal, formatMoney, roundToMinor } from '../../src/domain/money';
import { pricePlan } from '../../src/domain/pricing/price-plan';
import type { SpendThresholds } from '../../src/domain/spend-thresholds-schema';
import { getInvoice, listInvoices, type Invoice } from '../../src/invoices/store';
import { IngestWriter } from '../../src/metering/ingest-writer';
import { getPlan } from '../../src/plans/store';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import { startProviderSimulator } from '../../src/provider/simulator';
import { findDiscrepancies } from '../../src/reconciliations/discrepancies';
import { createSubscription } from '../../src/subscriptions/store';
import { workflowsPath } from '../../src/temporal/worker';
import {
  billingPeriodWorkflow,
  billingState,
  cancelSubscription,
  usageReported,
  workflowIdFor,
  type SubscriptionTerms,
} from '../../src/workflows/billing-period';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { seedHourlyPlan } from '../support/hourly-plan';
import { timeSkippingEnvironment } from '../support/temporal';
import { waitFor } from '../support/wait-for';
import { collectionOf } from '../support/collection';
import { realActivities } from '../support/activities';

/*
 * Progressive billing end to end on the time-skipping server, with real activities on Postgres
 * and the provider simulator behind HTTP: usage crosses two spend thresholds in one period, each
 * time an interim invoice is drafted, finalized and charged within the report's workflow task,
 * and the period invoice bills the full period less both, so the three add up to the full price.
 * Plan `hourly`: base 1.00, calls graduated 0.015 up to 100, then 0.0125.
 */
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let db: TestDatabase;
let simulator: Awaited<ReturnType<typeof startProviderSimulator>>;
let meterId: string;

before(async () => {
  [bundle, db] = await Promise.all([bundleWorkflowCode({ workflowsPath }), createTestDatabase()]);
  simulator = await startProviderSimulator({ port: await freePort() });
  meterId = await seedHourlyPlan(db.pool);
});
// A fresh test server per test: the time-skipping test server (1.40) can stop skipping time for
// the rest of its life after a test like the first one (see period-close.test.ts).
beforeEach(async () => {
  env = await timeSkippingEnvironment();
});
afterEach(async () => {
  await env?.teardown();
});
after(async () => {
  await simulator?.close();
  await db?.drop();
});

const provider = () => createHttpPaymentProvider({ baseUrl: simulator.url, timeoutMs: 2000 });
const activities = () => realActivities(db.pool, provider());

/** A customer on the hourly plan with spend thresholds, its billing workflow started; events go through the real ingest writer. */
async function subscribed(taskQueue: string, name: string, spendThresholds: SpendThresholds) {
  const { customer } = await createCustomer(db.pool, { external_id: name, name, currency: 'USD' }, 'system');
  const anchor = new Date(await env.currentTimeMs());
  const created = await createSubscription(db.pool, {
    customerId: customer.id,
    planCode: 'hourly',
    anchor,
    actor: 'system',
    spendThresholds,
  });
  assert.ok(created.created);
  const terms: SubscriptionTerms = {
    subscriptionId: created.subscription.id,
    customer: name,
    customerId: customer.id,
    planCode: 'hourly',
    limits: [],
    anchor: anchor.toISOString(),
    interval: { kind: 'duration', iso: 'PT1H' },
    spendThresholds,
  };
  const handle = await env.client.workflow.start(billingPeriodWorkflow, {
    taskQueue,
    workflowId: workflowIdFor(name),
    args: [{ terms, allowedLatenessMs: 60_000, dunning: [] }],
  });
  let stored = 0;
  let seq = 0;
  /** Stores `count` calls at the anchor (events and counters in one transaction), then reports them as an API process would. */
  const use = async (count: number) => {
    const events = Array.from({ length: count }, () => ({
      customer: name,
      customerId: customer.id,
      eventId: `e-${++stored}`,
      meterId,
      eventTime: anchor.toISOString(),
      receivedAt: anchor.toISOString(),
      value: null,
      properties: '{}',
      timestampProvided: true,
      late: false,
    }));
    const { outcomes } = await new IngestWriter(db.pool).write(events);
    assert.ok(outcomes.every((o) => o.status === 'accepted'));
    await handle.signal(usageReported, {
      producer: 'api-1',
      seq: ++seq,
      deltas: [{ meter: 'api_calls', at: anchor.toISOString(), quantity: String(count) }],
    });
  };
  const invoices = async (): Promise<Invoice[]> =>
    (await listInvoices(db.pool, { customerId: customer.id }, 100)).sort((a, b) => a.sequence - b.sequence || a.kind.localeCompare(b.kind));
  const interimFinalized = (sequence: number) =>
    waitFor(async () => (await invoices()).find((i) => i.kind === 'interim' && i.sequence === sequence && i.status !== 'draft'), {
      description: `interim invoice #${sequence} finalized`,
    });
  return { customerId: customer.id, anchor, handle, use, invoices, interimFinalized };
}

/** The invoice's collection, once the billing workflow has charged it (right after the finalize the test saw). */
const collected = (invoiceId: string) => collectionOf(env.client, db.pool, invoiceId);

describe('progressive billing', () => {
  test('two thresholds crossed in one period: two interim invoices charged, then the period invoice = full − interim, to the cent', async (t) => {
    const taskQueue = 'progressive';
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: activities() });
    await worker.runUntil(async () => {
      const c = await subscribed(taskQueue, 'progressive-1', { amounts: [], every: '1.00' });

      // The run prices the open period at its start and publishes the calls' spend decision point:
      // the line rounds to 1.00 from 0.995, at 0.995 / 0.015 = 66.33 calls (the last 1e-6 grid point below it).
      // API processes report at once near it.
      const published = await waitFor(
        async () =>
          (
            await db.pool.query<{ next_decision: string }>(
              `select next_decision::text from entitlements where customer_id = $1 and meter = 'api_calls'`,
              [c.customerId],
            )
          ).rows[0],
        { description: 'the spend decision point published' },
      );
      assert.equal(published.next_decision, '66.333333');

      // 70 calls = 1.05: the 1.00 threshold is reached.
      let reported = performance.now();
      await c.use(70);
      const first = await c.interimFinalized(1);
      t.diagnostic(`report → interim invoice #1 finalized: ${Math.round(performance.now() - reported)} ms`);
      assert.deepEqual([first.total, first.threshold, first.usage], ['1.05', '1', { api_calls: '70' }]);
      assert.deepEqual(
        first.lines.map((l) => [l.type, l.amount]),
        [['usage', '1.05']],
      );
      assert.deepEqual(await collected(first.id), { outcome: 'paid', attempts: 1 });

      // 170 calls = 1.50 + 70 × 0.0125 = 2.375 → 2.38: the 2.00 threshold; the tiers continue from the period start.
      reported = performance.now();
      await c.use(100);
      const second = await c.interimFinalized(2);
      t.diagnostic(`report → interim invoice #2 finalized: ${Math.round(performance.now() - reported)} ms`);
      assert.deepEqual(
        second.lines.map((l) => [l.type, l.amount]),
        [
          ['usage', '2.38'],
          ['interim_billed', '-1.05'],
        ],
      );
      assert.equal(second.total, '1.33');
      assert.deepEqual(await collected(second.id), { outcome: 'paid', attempts: 1 });

      // 200 calls = 2.75: no threshold above 2.00 is reached, no third interim invoice.
      await c.use(30);
      await waitFor(() => c.handle.query(billingState), {
        description: 'the last report read',
        until: (s) => s.meters.api_calls?.usage === '200',
      });

      // The period closes (time skips to its end plus the lateness): full price less both interim invoices.
      const firstRun = env.client.workflow.getHandle(c.handle.workflowId, c.handle.firstExecutionRunId, { followRuns: false });
      await assert.rejects(firstRun.result(), WorkflowContinuedAsNewError);
      assert.deepEqual((await firstRun.query(billingState)).interim, { sequence: 2, threshold: '2' });
      const all = await c.invoices();
      assert.deepEqual(
        all.map((i) => [i.kind, i.sequence, i.total]),
        [
          ['period', 0, '1.37'],
          ['interim', 1, '1.05'],
          ['interim', 2, '1.33'],
        ],
      );
      const period = all[0]!;
      assert.deepEqual(
        period.lines.map((l) => [l.type, l.amount]),
        [
          ['base_fee', '1.00'],
          ['usage', '2.75'],
          ['interim_billed', '-2.38'],
        ],
      );
      const plan = (await getPlan(db.pool, 'hourly'))!;
      const full = pricePlan(plan, { api_calls: '200' }).totals.total;
      assert.equal(full, '3.75');
      assert.equal(all.reduce((sum, i) => sum.plus(i.total), new Decimal(0)).toFixed(2), full);
      assert.deepEqual(await collected(period.id), { outcome: 'paid', attempts: 1 });
      const { rows: charges } = await db.pool.query<{ amount: string; status: string }>(
        `select c.amount::text, c.status from charges c join invoices i on i.id = c.invoice_id where i.customer_id = $1 order by i.sequence, i.kind`,
        [c.customerId],
      );
      assert.deepEqual(
        charges.map((r) => [r.amount, r.status]),
        [
          ['1.37', 'succeeded'],
          ['1.05', 'succeeded'],
          ['1.33', 'succeeded'],
        ],
      );
      assert.equal(interimBilledLine('USD', [first, second])!.amount, '-2.38');
      assert.equal(totalOf(period.lines).toFixed(2), period.total);

      // Reconciliation recomputes all three from the raw events and finds nothing to correct.
      const { found, invoicesChecked } = await findDiscrepancies(
        { db: db.pool, provider: provider(), clock: systemClock, lookbackInvoices: 3 },
        {
          start: c.anchor,
          end: new Date(c.anchor.getTime() + 3_600_000),
          customerId: c.customerId,
          asOf: new Date(await env.currentTimeMs()),
        },
      );
      assert.equal(invoicesChecked, 3);
      assert.deepEqual(found, []);

      // The run's history replays against today's code.
      await Worker.runReplayHistory({ workflowBundle: bundle }, await firstRun.fetchHistory(), c.handle.workflowId);
      assert.equal((await getInvoice(db.pool, first.id))!.status, 'paid');
    });
  });

  test('late usage inside the interim span and a cancellation: the final invoice bills [start, cancellation) less the interim invoice', async () => {
    const taskQueue = 'progressive-cancel';
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: activities() });
    await worker.runUntil(async () => {
      const c = await subscribed(taskQueue, 'progressive-2', { amounts: ['1.00'], every: null });
      await c.use(70);
      const interim = await c.interimFinalized(1);
      assert.equal(interim.total, '1.05');
      // 10 more calls timed at the period start, i.e. inside the span the interim invoice already billed.
      await c.use(10);
      await waitFor(() => c.handle.query(billingState), {
        description: 'the late calls read',
        until: (s) => s.meters.api_calls?.usage === '80',
      });
      await c.handle.signal(cancelSubscription, { at: new Date(await env.currentTimeMs()).toISOString() });
      await c.handle.result();
      const all = await c.invoices();
      const billed = all[0]!.periodEnd.getTime() - c.anchor.getTime();
      assert.ok(billed < 3_600_000, 'cut short at the cancellation');
      // The 1.00 base fee prorated to [start, cancellation) (seconds of the hour, however long the test took to get there).
      const baseFee = formatMoney(roundToMinor(new Decimal('1.00').times(billed).div(3_600_000), 'USD', 'half_up'), 'USD');
      assert.deepEqual(
        all.map((i) => [i.kind, i.sequence, i.total, i.usage]),
        [
          ['period', 0, formatMoney(new Decimal(baseFee).plus('0.15'), 'USD'), { api_calls: '80' }],
          ['interim', 1, '1.05', { api_calls: '70' }],
        ],
      );
      // The prorated base fee + 80 × 0.015 = 1.20 for [start, cancellation), of which the interim invoice billed 1.05.
      assert.deepEqual(
        all[0]!.lines.map((l) => [l.type, l.amount]),
        [
          ['base_fee', baseFee],
          ['usage', '1.20'],
          ['interim_billed', '-1.05'],
        ],
      );
      assert.deepEqual(await collected(all[0]!.id), { outcome: 'paid', attempts: 1 });
    });
  });
});
