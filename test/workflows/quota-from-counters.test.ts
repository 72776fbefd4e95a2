import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowContinuedAsNewError } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { freePort } from '../../scripts/free-port';
import { createCustomer } from '../../src/customers/store';
import type { MeterLimit } from '../../src/domain/quota-policy-schema';
import { IngestWriter } from '../../src/metering/ingest-writer';
import { startProviderSimulator } from '../../src/provider/simulator';
import { createSubscription } from '../../src/subscriptions/store';
import {
  billingPeriodWorkflow,
  billingState,
  usageReported,
  workflowIdFor,
  type SubscriptionTerms,
} from '../../src/workflows/billing-period';
import { workflowsPath } from '../../src/temporal/worker';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { seedHourlyPlan } from '../support/hourly-plan';
import { timeSkippingEnvironment } from '../support/temporal';
import { waitFor } from '../support/wait-for';
import { realActivities } from '../support/activities';

/*
 * Quota state heals itself: the billing workflow takes its usage from the real-time counters
 * (readUsageTotals), not from the reports' deltas. Usage stored by an API process that died
 * (kill -9) between the commit and its report is in the counters, never reported: the next read
 * (another producer's report, the producer deadline, the close) puts it in the workflow's state.
 * Real activities on Postgres, events stored through the real ingest writer, the time-skipping
 * server for the deadlines.
 */
const REPORT_INTERVAL_MS = 300_000;
/** The report interval of the history-count test, which spaces its reports in real time. */
const STEADY_INTERVAL_MS = 10_000;
const EventType = proto.temporal.api.enums.v1.EventType;
/** Events that mean a workflow task is still to run or to complete. */
const PENDING_WORK = new Set([
  EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
  EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
  EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
  EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
  EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
]);
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let db: TestDatabase;
let simulator: Awaited<ReturnType<typeof startProviderSimulator>>;
let meterId: string;

before(async () => {
  [env, bundle, db] = await Promise.all([timeSkippingEnvironment(), bundleWorkflowCode({ workflowsPath }), createTestDatabase()]);
  simulator = await startProviderSimulator({ port: await freePort() });
  meterId = await seedHourlyPlan(db.pool);
});
after(async () => {
  await env?.teardown();
  await simulator?.close();
  await db?.drop();
});

const activities = () => realActivities(db.pool, simulator.url);

const limits: MeterLimit[] = [
  { meter: 'api_calls', soft_thresholds: [{ percent: 80 }], hard_limit: '1000', grace_period: 'PT10M', at_hard_limit: 'block' },
];

let customers = 0;
/** A customer subscribed to the hourly plan from the test server's now, with its billing workflow started. */
async function subscribed(taskQueue: string, usageReportIntervalMs = REPORT_INTERVAL_MS) {
  const name = `healing-${++customers}`;
  const { customer } = await createCustomer(db.pool, { external_id: name, name, currency: 'USD' }, 'system');
  const anchor = new Date(await env.currentTimeMs());
  const created = await createSubscription(db.pool, { customerId: customer.id, planCode: 'hourly', anchor, actor: 'system' });
  assert.ok(created.created);
  const terms: SubscriptionTerms = {
    subscriptionId: created.subscription.id,
    customer: name,
    customerId: customer.id,
    planCode: 'hourly',
    limits,
    anchor: anchor.toISOString(),
    interval: { kind: 'duration', iso: 'PT1H' },
  };
  const handle = await env.client.workflow.start(billingPeriodWorkflow, {
    taskQueue,
    workflowId: workflowIdFor(name),
    args: [{ terms, allowedLatenessMs: 60_000, dunning: [], usageReportIntervalMs }],
  });
  let stored = 0;
  /** Stores `count` events through the ingest writer (events and counters in one transaction), one per second from the anchor. */
  const store = async (count: number) => {
    const events = Array.from({ length: count }, () => {
      const at = new Date(anchor.getTime() + 1000 * stored++).toISOString();
      return {
        customer: name,
        customerId: customer.id,
        eventId: `e-${stored}`,
        meterId,
        eventTime: at,
        receivedAt: at,
        value: null,
        properties: '{}',
        timestampProvided: true,
        late: false,
      };
    });
    const { outcomes } = await new IngestWriter(db.pool).write(events);
    assert.ok(outcomes.every((o) => o.status === 'accepted'));
  };
  /** What the events say the period's usage is (the invoice's truth, independent of the counters). */
  const storedTotal = async () =>
    (
      await db.pool.query<{ n: string }>(
        `select count(*)::text as n from usage_events where customer_short_id = (select short_id from customers where id = $1::uuid) and event_time >= $2 and event_time < $3`,
        [customer.id, anchor, new Date(anchor.getTime() + 3_600_000)],
      )
    ).rows[0]!.n;
  const report = (producer: string, seq: number, quantity: string) =>
    handle.signal(usageReported, { producer, seq, deltas: [{ meter: 'api_calls', at: anchor.toISOString(), quantity }] });
  const usageReaches = (usage: string, description: string) =>
    waitFor(() => handle.query(billingState), { description, until: (s) => s.meters.api_calls?.usage === usage });
  return { customerId: customer.id, subscriptionId: created.subscription.id, handle, store, storedTotal, report, usageReaches };
}

describe('quota state from the counters', () => {
  test('usage stored without a report (the API killed between commit and signal) is in the state after the next read', async () => {
    const taskQueue = 'heal';
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: activities() });
    await worker.runUntil(async () => {
      const c = await subscribed(taskQueue);
      // At the start the run publishes the meter's state with its next decision point.
      const first = await waitFor(
        async () =>
          (
            await db.pool.query<{ usage: string; next_decision: string }>(
              `select usage::text, next_decision::text from entitlements where customer_id = $1 and meter = 'api_calls'`,
              [c.customerId],
            )
          ).rows[0],
        { description: 'the first publish' },
      );
      assert.deepEqual(first, { usage: '0', next_decision: '800' });

      // A report: the usage is the counters', whatever the deltas say.
      await c.store(100);
      await c.report('api-a', 1, '1');
      await c.usageReaches('100', 'the first report read');
      assert.equal((await c.handle.query(billingState)).meters.api_calls!.usage, await c.storedTotal());

      // api-a stores 300 more and dies before reporting them; api-b reports 5 of its own.
      await c.store(300);
      await c.store(5);
      await c.report('api-b', 1, '5');
      await c.usageReaches('405', "another producer's report");
      assert.equal((await c.handle.query(billingState)).meters.api_calls!.usage, await c.storedTotal());

      // Then the last producer dies too, after storing 445 more (over the 80% threshold): no report
      // comes, and the producer deadline (1.5 × the report interval after the last report) reads them.
      await c.store(445);
      await env.sleep(1.5 * REPORT_INTERVAL_MS + 1000);
      const healed = await c.usageReaches('850', 'the producer deadline read');
      assert.equal(healed.meters.api_calls!.usage, await c.storedTotal());
      assert.deepEqual(healed.meters.api_calls!.notified, ['80%']);
      const notices = await waitFor(
        async () =>
          (
            await db.pool.query<{ n: number }>(`select count(*)::int as n from notifications where subscription_id = $1`, [
              c.subscriptionId,
            ])
          ).rows[0]!.n,
        { description: 'the threshold notice', until: (n) => n >= 1 },
      );
      assert.equal(notices, 1);
      const published = await waitFor(
        async () =>
          (
            await db.pool.query<{ usage: string; next_decision: string }>(
              `select usage::text, next_decision::text from entitlements where customer_id = $1 and meter = 'api_calls'`,
              [c.customerId],
            )
          ).rows[0],
        { description: 'the healed state published', until: (row) => row?.usage === '850' },
      );
      assert.equal(published!.next_decision, '1000');

      // Stored and never reported, with nobody reporting any more: the close reads them before drafting.
      await c.store(20);
      const firstRun = env.client.workflow.getHandle(c.handle.workflowId, c.handle.firstExecutionRunId, { followRuns: false });
      await assert.rejects(firstRun.result(), WorkflowContinuedAsNewError);
      const closed = await firstRun.query(billingState);
      assert.equal(closed.meters.api_calls!.usage, '870');
      assert.equal(closed.meters.api_calls!.usage, await c.storedTotal());

      // The history of the healed run replays against today's code.
      const history = await firstRun.fetchHistory();
      await Worker.runReplayHistory({ workflowBundle: bundle }, history, c.handle.workflowId);
    });
  });

  test('history events per report: steady slow reports from two API processes, and an urgent one', async (t) => {
    const taskQueue = 'history-per-report';
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: activities() });
    await worker.runUntil(async () => {
      const c = await subscribed(taskQueue, STEADY_INTERVAL_MS);
      // Waiting on the published state, not on queries (the test server runs a workflow task for each query).
      const published = (usage: string, description: string) =>
        waitFor(
          async () =>
            (
              await db.pool.query<{ usage: string; next_decision: string | null }>(
                `select usage::text, next_decision::text from entitlements where customer_id = $1 and meter = 'api_calls'`,
                [c.customerId],
              )
            ).rows[0],
          { description, until: (row) => row?.usage === usage },
        );
      /** The history once no workflow task is pending: a task's commands are recorded with its completion. */
      const settledHistory = () =>
        waitFor(async () => (await c.handle.fetchHistory()).events!, {
          description: 'no workflow task pending',
          until: (events) => {
            const types = events.map((e) => e.eventType!);
            const lastCompleted = types.lastIndexOf(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED);
            return types.slice(lastCompleted + 1).every((type) => !PENDING_WORK.has(type));
          },
        });

      // The first report moves the wake-up from the close to the producer deadline.
      await c.store(1);
      await c.report('api-a', 1, '1');
      const firstReportAt = performance.now();
      // Each API process reports a little over an interval after its previous report (once the interval has
      // passed, at its next tick), the two half of that apart; slots from the first report, so a slow read
      // does not delay the next report.
      const spacing = (STEADY_INTERVAL_MS + 1000) / 2;
      const slot = (i: number) => sleep(Math.max(0, firstReportAt + i * spacing - performance.now()));
      await published('1', 'the first report read');
      const seq: Record<string, number> = { 'api-a': 1, 'api-b': 0 };
      const steadyFrom = (await settledHistory()).length;
      // Two API processes reporting in turn: steady usage far from any decision. In real time, with a short
      // interval: the time-skipping server's clock stays locked here (env.sleep took its full duration).
      const REPORTS = 8;
      for (let i = 1; i <= REPORTS; i++) {
        await slot(i);
        const producer = i % 2 === 1 ? 'api-b' : 'api-a';
        await c.store(1);
        await c.report(producer, ++seq[producer]!, '1');
        await published(String(1 + i), `slow report ${i} read`);
      }
      const steadyEvents = (await settledHistory()).slice(steadyFrom);
      const steady = countByType(steadyEvents);
      const perReport = steadyEvents.length / REPORTS;
      t.diagnostic(`history events per slow report: ${perReport} (${REPORTS} reports: ${JSON.stringify(steady)})`);

      // An urgent report: usage crosses the 80% threshold, so the notice goes out (an activity) before the publish.
      const urgentFrom = steadyFrom + steadyEvents.length;
      await slot(REPORTS + 1);
      await c.store(800);
      await c.report('api-b', ++seq['api-b']!, '800');
      const crossed = await published(String(1 + REPORTS + 800), 'the urgent report read');
      assert.equal(crossed!.next_decision, '1000');
      const urgentEvents = (await settledHistory()).slice(urgentFrom);
      t.diagnostic(
        `history events of an urgent report crossing a threshold: ${urgentEvents.length} (${JSON.stringify(countByType(urgentEvents))})`,
      );

      // Per slow report: the signal, its workflow task (3), the totals read and the publish (a marker each), and
      // the producer-deadline timer moved once per report interval (a cancel and a start: one per report from two APIs).
      assert.equal(steady.TIMER_FIRED, undefined, 'the producer deadline never fires while reports come');
      assert.equal(steady.WORKFLOW_PROPERTIES_MODIFIED, undefined, 'the memo does not change with the usage');
      assert.ok(perReport <= 7, `${perReport} history events per slow report`);
    });
  });
});

/** History events counted by type (TIMER_STARTED: 2). */
function countByType(events: proto.temporal.api.history.v1.IHistoryEvent[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const event of events) {
    const type = EventType[event.eventType!]!.replace(/^EVENT_TYPE_/, '');
    counts[type] = (counts[type] ?? 0) + 1;
  }
  return counts;
}
