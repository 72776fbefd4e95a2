import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { WorkflowContinuedAsNewError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { freePort } from '../../scripts/free-port';
import { CustomerService } from '../../src/customers/service';
import { createCustomer } from '../../src/customers/store';
import { Decimal } from '../../src/domain/money';
import { planSchema } from '../../src/domain/plan';
import { getInvoice, type Invoice } from '../../src/invoices/store';
import { createMeter } from '../../src/meters/store';
import { createPlan } from '../../src/plans/store';
import { startProviderSimulator } from '../../src/provider/simulator';
import { SubscriptionService } from '../../src/subscriptions/service';
import type { Subscription } from '../../src/subscriptions/store';
import { temporalSubscriptionLifecycle } from '../../src/subscriptions/temporal-lifecycle';
import { workflowsPath } from '../../src/temporal/worker';
import { billingState, changePlan, workflowIdFor } from '../../src/workflows/billing-period';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { timeSkippingEnvironment } from '../support/temporal';
import { storeEvents } from '../support/usage-events';
import { waitFor } from '../support/wait-for';
import { realActivities } from '../support/activities';

/*
 * Plan changes end to end on the time-skipping server, with real activities on Postgres and the
 * provider simulator behind HTTP: an upgrade and a downgrade through the subscription service (as
 * the API and the CLI make them), the `changePlan` Update sent straight to the workflow as finance
 * would from the Temporal UI, and a cancellation a quarter into the period. Hourly periods.
 *
 * Plans (USD, hourly, `api_calls` graduated, one ladder shared by the period by default):
 * - starter: base 4.00; 0.10 up to 100 calls, then 0.05; hard limit 1,000 calls
 * - growth:  base 8.00; 0.08 up to 100 calls, then 0.04; hard limit 5,000 calls
 * 150 calls before a change at 15 minutes and 100 after: starter then growth bills
 * 4.00 × 1/4 = 1.00 + (100 × 0.10 + 50 × 0.05) = 12.50 on starter, 8.00 × 3/4 = 6.00 and, on the
 * shared ladder, price(250) − price(150) = 14.00 − 10.00 = 4.00 on growth (8.00 on a ladder of its
 * own): 23.50.
 */
const HOUR = 3_600_000;
const MINUTE = 60_000;
const LATENESS = MINUTE;

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let db: TestDatabase;
let simulator: Awaited<ReturnType<typeof startProviderSimulator>>;
let meterId: string;

before(async () => {
  [bundle, db] = await Promise.all([bundleWorkflowCode({ workflowsPath }), createTestDatabase()]);
  simulator = await startProviderSimulator({ port: await freePort() });
  const { meter } = await createMeter(
    db.pool,
    { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} },
    'system',
  );
  meterId = meter.id;
  for (const [id, base, first, beyond, limit] of [
    ['starter', '4.00', '0.10', '0.05', '1000'],
    ['growth', '8.00', '0.08', '0.04', '5000'],
  ] as const) {
    const plan = planSchema({ knownMeters: new Set(['api_calls']) }).parse({
      id,
      name: id,
      currency: 'USD',
      base_fee: base,
      charges: [
        {
          meter: 'api_calls',
          model: 'graduated',
          tiers: [
            { up_to: '100', unit_price: first },
            { up_to: null, unit_price: beyond },
          ],
        },
      ],
      limits: [{ meter: 'api_calls', hard_limit: limit, at_hard_limit: 'block' }],
      interval: { kind: 'duration', iso: 'PT1H' },
    });
    await createPlan(db.pool, plan, 'system');
  }
});
// A fresh test server per test, as in period-close.test.ts: one that retried an activity may stop skipping time.
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

const activities = () => realActivities(db.pool, simulator.url);

/** The subscription service as the API runs it, its "now" fixed at `at` (the test server's time moves in jumps). */
const serviceAt = (taskQueue: string, at: Date) =>
  new SubscriptionService({
    pool: db.pool,
    clock: { now: () => at },
    customers: new CustomerService(db.pool),
    lifecycle: temporalSubscriptionLifecycle({
      client: env.client,
      taskQueue,
      allowedLatenessMs: LATENESS,
      dunning: [],
      usageReportIntervalMs: 300_000,
    }),
  });

let customers = 0;

/** A customer subscribed through the service from the test server's now (its workflow started), with 150 calls from the anchor. */
async function subscribed(taskQueue: string, plan: string) {
  const name = `changing-${++customers}`;
  await createCustomer(db.pool, { external_id: name, name, currency: 'USD' }, 'system');
  const anchor = new Date(await env.currentTimeMs());
  const result = await serviceAt(taskQueue, anchor).subscribe('cli', { customer: name, plan, start: anchor });
  assert.ok(result.ok);
  const subscription = result.value.subscription;
  await calls(subscription, anchor, 150);
  const handle = env.client.workflow.getHandle(workflowIdFor(name));
  await waitFor(() => handle.query(billingState), { description: 'the workflow answers queries' });
  return { subscription, handle, anchor, end: new Date(anchor.getTime() + HOUR) };
}

const calls = (s: Subscription, from: Date, count: number) => storeEvents(db.pool, { customerId: s.customer.id, meterId, from, count });

/** Skips the test server's time to `at` (at least). */
async function skipTo(at: number): Promise<void> {
  const now = await env.currentTimeMs();
  if (at > now) await env.sleep(at - now);
}

/** Waits (skipping time) until the workflow's current run has closed its period and continued as new. */
async function closed(handle: WorkflowHandle): Promise<void> {
  const { runId } = await handle.describe();
  await assert.rejects(
    env.client.workflow.getHandle(handle.workflowId, runId, { followRuns: false }).result(),
    WorkflowContinuedAsNewError,
  );
}

/** The period invoice of the period starting at `start`, as stored. */
async function invoiceOf(s: Subscription, start: Date): Promise<Invoice> {
  const { rows } = await db.pool.query<{ id: string }>(
    `select id from invoices where customer_id = $1 and period_start = $2 and kind = 'period'`,
    [s.customer.id, start],
  );
  assert.equal(rows.length, 1, `one invoice for the period starting ${start.toISOString()}`);
  return (await getInvoice(db.pool, rows[0]!.id))!;
}

/** Each line as [type, segment plan (null: the period on one plan), segment start, amount], in the invoice's order. */
const linesOf = (invoice: Invoice) =>
  invoice.lines.map((l) => [l.type, l.segment?.planCode ?? null, l.segment?.start ?? null, l.amount] as const);

/** A fixed fee's share of the hour [from, to), to the cent (half up). */
const share = (fee: string, from: number, to: number) =>
  new Decimal(fee)
    .times(to - from)
    .div(HOUR)
    .toDecimalPlaces(2, Decimal.ROUND_HALF_UP)
    .toFixed(2);

/** The hard limit the run last published for api_calls, and the end of the period it belongs to. */
async function publishedLimit(s: Subscription): Promise<{ hardLimit: string; resetsAt: string } | undefined> {
  const { rows } = await db.pool.query<{ hard_limit: string; resets_at: Date }>(
    `select hard_limit::text, resets_at from entitlements where customer_id = $1 and meter = 'api_calls'`,
    [s.customer.id],
  );
  return rows[0] && { hardLimit: String(Number(rows[0].hard_limit)), resetsAt: rows[0].resets_at.toISOString() };
}

async function changesOf(s: Subscription) {
  const { rows } = await db.pool.query<{ from_plan: string; to_plan: string; effective_at: Date; applied_at: Date | null; actor: string }>(
    'select from_plan, to_plan, effective_at, applied_at, actor from subscription_changes where subscription_id = $1 order by recorded_at',
    [s.id],
  );
  return rows;
}

async function planAuditOf(s: Subscription) {
  const { rows } = await db.pool.query<{ actor: string; action: string; details: Record<string, unknown> }>(
    `select actor, action, details from audit_log where subject_id = $1 and action like 'subscription.plan%' order by id`,
    [s.id],
  );
  return rows;
}

const updatesAccepted = async (handle: WorkflowHandle) =>
  ((await handle.fetchHistory()).events ?? []).filter(
    (e) => e.eventType === proto.temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
  ).length;

const worker = (taskQueue: string) =>
  Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: activities() });

describe('plan changes on the time-skipping server, real activities', () => {
  test('an upgrade through the service 15 minutes in splits the invoice: prorated base fees, one shared ladder', async () => {
    const taskQueue = 'plan-change-upgrade';
    await (
      await worker(taskQueue)
    ).runUntil(async () => {
      const { subscription, handle, anchor, end } = await subscribed(taskQueue, 'starter');
      const at = new Date(anchor.getTime() + 15 * MINUTE);
      await skipTo(at.getTime());
      const changed = await serviceAt(taskQueue, at).changePlan('cli', subscription.id, 'growth');
      assert.ok(changed.ok);
      assert.equal(changed.value.direction, 'upgrade');
      assert.equal(changed.value.effectiveAt.toISOString(), at.toISOString(), 'an upgrade takes effect at once');
      assert.equal((await handle.query(billingState)).planCode, 'growth');
      assert.deepEqual(await publishedLimit(subscription), { hardLimit: '5000', resetsAt: end.toISOString() }, 'limits switch at once');
      await calls(subscription, new Date(at.getTime() + MINUTE), 100);

      await closed(handle);
      const invoice = await invoiceOf(subscription, anchor);
      assert.deepEqual(linesOf(invoice), [
        ['base_fee', 'starter', anchor.toISOString(), '1.00'],
        ['usage', 'starter', anchor.toISOString(), '12.50'],
        ['base_fee', 'growth', at.toISOString(), '6.00'],
        ['usage', 'growth', at.toISOString(), '4.00'],
      ]);
      assert.equal(invoice.total, '23.50');
      assert.deepEqual(
        invoice.lines.map((l) => l.segment?.end),
        [at, at, end, end].map((d) => d.toISOString()),
      );
    });
  });

  test('a downgrade through the service defaults to the period end: this period on the old plan, the next on the new one', async () => {
    const taskQueue = 'plan-change-downgrade';
    await (
      await worker(taskQueue)
    ).runUntil(async () => {
      const { subscription, handle, anchor, end } = await subscribed(taskQueue, 'growth');
      const at = new Date(anchor.getTime() + 15 * MINUTE);
      await skipTo(at.getTime());
      const changed = await serviceAt(taskQueue, at).changePlan('cli', subscription.id, 'starter');
      assert.ok(changed.ok);
      assert.equal(changed.value.direction, 'downgrade');
      assert.equal(changed.value.effectiveAt.toISOString(), end.toISOString());
      assert.equal((await handle.query(billingState)).planCode, 'growth', 'the period keeps its plan');
      assert.deepEqual(await publishedLimit(subscription), { hardLimit: '5000', resetsAt: end.toISOString() });
      await calls(subscription, new Date(at.getTime() + MINUTE), 100);
      // 20 calls in the next period, billed on starter there.
      await calls(subscription, new Date(end.getTime() + MINUTE), 20);

      await closed(handle);
      // growth for the whole period: 8.00 + (100 × 0.08 + 150 × 0.04) for 250 calls, no segments.
      const first = await invoiceOf(subscription, anchor);
      assert.deepEqual(linesOf(first), [
        ['base_fee', null, null, '8.00'],
        ['usage', null, null, '14.00'],
      ]);
      assert.equal(first.planCode, 'growth');
      const next = await waitFor(() => handle.query(billingState), {
        description: 'the next period runs on starter',
        until: (s) => s.period.start === end.toISOString(),
      });
      assert.equal(next.planCode, 'starter');
      const nextEnd = new Date(end.getTime() + HOUR).toISOString();
      await waitFor(() => publishedLimit(subscription), {
        description: "starter's limit published for the next period",
        until: (l) => l?.hardLimit === '1000' && l.resetsAt === nextEnd,
      });
      assert.deepEqual(
        (await changesOf(subscription)).map((c) => [c.to_plan, c.effective_at.toISOString(), c.applied_at !== null]),
        [['starter', end.toISOString(), true]],
      );

      await closed(handle);
      // starter for the whole next period: 4.00 + 20 × 0.10.
      const second = await invoiceOf(subscription, end);
      assert.deepEqual(linesOf(second), [
        ['base_fee', null, null, '4.00'],
        ['usage', null, null, '2.00'],
      ]);
      assert.equal(second.planCode, 'starter');
    });
  });

  test('a downgrade asked `immediately` splits the period at once, limits too', async () => {
    const taskQueue = 'plan-change-downgrade-now';
    await (
      await worker(taskQueue)
    ).runUntil(async () => {
      const { subscription, handle, anchor, end } = await subscribed(taskQueue, 'growth');
      const at = new Date(anchor.getTime() + 15 * MINUTE);
      await skipTo(at.getTime());
      const changed = await serviceAt(taskQueue, at).changePlan('cli', subscription.id, 'starter', 'immediately');
      assert.ok(changed.ok);
      assert.equal(changed.value.direction, 'downgrade');
      assert.equal(changed.value.effectiveAt.toISOString(), at.toISOString());
      assert.equal((await handle.query(billingState)).planCode, 'starter');
      assert.deepEqual(await publishedLimit(subscription), { hardLimit: '1000', resetsAt: end.toISOString() });
      await calls(subscription, new Date(at.getTime() + MINUTE), 100);

      await closed(handle);
      // growth 8.00 × 1/4 and 100 × 0.08 + 50 × 0.04; starter 4.00 × 3/4 and price(250) − price(150) = 17.50 − 12.50.
      const invoice = await invoiceOf(subscription, anchor);
      assert.deepEqual(linesOf(invoice), [
        ['base_fee', 'growth', anchor.toISOString(), '2.00'],
        ['usage', 'growth', anchor.toISOString(), '10.00'],
        ['base_fee', 'starter', at.toISOString(), '3.00'],
        ['usage', 'starter', at.toISOString(), '5.00'],
      ]);
      assert.equal(invoice.total, '20.00');
    });
  });

  test('a cancellation 15 minutes in bills a quarter of the base fee and the usage up to it', async () => {
    const taskQueue = 'plan-change-cancel';
    await (
      await worker(taskQueue)
    ).runUntil(async () => {
      const { subscription, handle, anchor } = await subscribed(taskQueue, 'starter');
      const at = new Date(anchor.getTime() + 15 * MINUTE);
      await skipTo(at.getTime());
      const canceled = await serviceAt(taskQueue, at).cancel('cli', subscription.id);
      assert.ok(canceled.ok);
      // After the cancellation: not billed.
      await calls(subscription, new Date(at.getTime() + MINUTE), 100);

      await handle.result();
      const invoice = await invoiceOf(subscription, anchor);
      assert.equal(invoice.periodEnd.toISOString(), at.toISOString());
      // 4.00 × 15/60 and 100 × 0.10 + 50 × 0.05: the period's first quarter only.
      assert.deepEqual(linesOf(invoice), [
        ['base_fee', null, null, '1.00'],
        ['usage', null, null, '12.50'],
      ]);
      assert.equal(invoice.total, '13.50');
    });
  });

  test('the changePlan Update from the Temporal UI, `immediately`: recorded as the API records it, limits switch, the invoice splits', async () => {
    const taskQueue = 'plan-change-update-now';
    await (
      await worker(taskQueue)
    ).runUntil(async () => {
      const { subscription, handle, anchor, end } = await subscribed(taskQueue, 'starter');
      await skipTo(anchor.getTime() + 15 * MINUTE);
      const view = await handle.executeUpdate(changePlan, { args: [{ plan: 'growth', effective: 'immediately' }] });
      assert.equal(view.planCode, 'growth');
      assert.deepEqual((await publishedLimit(subscription))?.hardLimit, '5000');

      // The change instant is the workflow's time when it took the Update.
      const changes = await changesOf(subscription);
      assert.equal(changes.length, 1);
      const change = changes[0]!;
      const at = change.effective_at;
      assert.ok(at.getTime() >= anchor.getTime() + 15 * MINUTE && at.getTime() < anchor.getTime() + 16 * MINUTE, at.toISOString());
      assert.deepEqual(
        [change.from_plan, change.to_plan, change.applied_at?.toISOString(), change.actor],
        ['starter', 'growth', at.toISOString(), `workflow:${handle.workflowId}`],
      );
      assert.deepEqual(await planAuditOf(subscription), [
        {
          actor: `workflow:${handle.workflowId}`,
          action: 'subscription.plan_changed',
          details: { from_plan: 'starter', to_plan: 'growth', effective_at: at.toISOString() },
        },
      ]);
      await calls(subscription, new Date(anchor.getTime() + 20 * MINUTE), 100);

      await closed(handle);
      const invoice = await invoiceOf(subscription, anchor);
      const t = at.getTime();
      assert.deepEqual(linesOf(invoice), [
        ['base_fee', 'starter', anchor.toISOString(), share('4.00', anchor.getTime(), t)],
        ['usage', 'starter', anchor.toISOString(), '12.50'],
        ['base_fee', 'growth', at.toISOString(), share('8.00', t, end.getTime())],
        ['usage', 'growth', at.toISOString(), '4.00'],
      ]);
      const next = await handle.query(billingState);
      assert.equal(next.planCode, 'growth', 'the next period stays on the recorded plan');
    });
  });

  test('the changePlan Update `period_end`: a pending change, applied as the next period starts', async () => {
    const taskQueue = 'plan-change-update-later';
    await (
      await worker(taskQueue)
    ).runUntil(async () => {
      const { subscription, handle, anchor, end } = await subscribed(taskQueue, 'starter');
      await skipTo(anchor.getTime() + 15 * MINUTE);
      // An upgrade asked for the period end is one too.
      const view = await handle.executeUpdate(changePlan, { args: [{ plan: 'growth', effective: 'period_end' }] });
      assert.equal(view.planCode, 'starter');
      assert.deepEqual(await publishedLimit(subscription), { hardLimit: '1000', resetsAt: end.toISOString() });
      assert.deepEqual(
        (await changesOf(subscription)).map((c) => [c.to_plan, c.effective_at.toISOString(), c.applied_at, c.actor]),
        [['growth', end.toISOString(), null, `workflow:${handle.workflowId}`]],
      );
      assert.deepEqual(
        (await planAuditOf(subscription)).map((a) => [a.actor, a.action, a.details]),
        [
          [
            `workflow:${handle.workflowId}`,
            'subscription.plan_change_scheduled',
            { from_plan: 'starter', to_plan: 'growth', effective_at: end.toISOString() },
          ],
        ],
      );

      await closed(handle);
      const first = await invoiceOf(subscription, anchor);
      assert.deepEqual(linesOf(first), [
        ['base_fee', null, null, '4.00'],
        ['usage', null, null, '12.50'],
      ]);
      const next = await waitFor(() => handle.query(billingState), {
        description: 'the next period runs on growth',
        until: (s) => s.period.start === end.toISOString(),
      });
      assert.equal(next.planCode, 'growth');
      await waitFor(() => publishedLimit(subscription), {
        description: "growth's limit published for the next period",
        until: (l) => l?.hardLimit === '5000' && l.resetsAt === new Date(end.getTime() + HOUR).toISOString(),
      });
    });
  });

  test('the changePlan Update refuses a malformed change before the history, and an unknown plan without a trace in Postgres', async () => {
    const taskQueue = 'plan-change-update-refused';
    await (
      await worker(taskQueue)
    ).runUntil(async () => {
      const { subscription, handle } = await subscribed(taskQueue, 'starter');
      for (const malformed of [
        { plan: 'growth', effective: 'tomorrow' },
        { plan: '' },
        { plan: 'growth', planCode: 'growth', limits: [] },
      ]) {
        await assert.rejects(
          handle.executeUpdate(changePlan, { args: [malformed as never] }),
          (err: unknown) => err instanceof WorkflowUpdateFailedError && /a plan change is \{"plan"/.test(String(err.cause?.message)),
        );
      }
      assert.equal(await updatesAccepted(handle), 0, 'the validator refused them: nothing in the history');

      await assert.rejects(
        handle.executeUpdate(changePlan, { args: [{ plan: 'enterprise' }] }),
        // The activity's refusal (its cause) fails the Update.
        (err: unknown) =>
          err instanceof WorkflowUpdateFailedError && /no plan "enterprise"/.test(String((err.cause?.cause as Error)?.message)),
      );
      assert.deepEqual(await changesOf(subscription), []);
      assert.deepEqual(await planAuditOf(subscription), []);
      assert.equal((await handle.query(billingState)).planCode, 'starter');
      assert.deepEqual((await publishedLimit(subscription))?.hardLimit, '1000');
    });
  });
});
