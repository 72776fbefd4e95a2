import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { freePort } from '../../scripts/free-port';
import { systemClock } from '../../src/clock';
import { createCustomer } from '../../src/customers/store';
import { startEntitlements, type Entitlements } from '../../src/entitlements/entitlements';
import { IngestWriter } from '../../src/metering/ingest-writer';
import { UsageSignaler } from '../../src/metering/usage-signaler';
import { startProviderSimulator } from '../../src/provider/simulator';
import { createSubscription } from '../../src/subscriptions/store';
import { termsOf } from '../../src/subscriptions/temporal-lifecycle';
import { workflowsPath } from '../../src/temporal/worker';
import { billingPeriodWorkflow, workflowIdFor } from '../../src/workflows/billing-period';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { seedHourlyPlan } from '../support/hourly-plan';
import { localEnvironment } from '../support/temporal';
import { waitFor } from '../support/wait-for';
import { realActivities } from '../support/activities';

/*
 * How long a spend threshold takes to become a finalized interim invoice, end to end and in real
 * time: events stored through the ingest writer, the real usage signaler (its one-second tick,
 * the default 300 s slow-report interval) deciding from the quota state the workflow published
 * (the spend decision point, through Postgres NOTIFY into the API's entitlement store), a real
 * Temporal dev server and worker, real activities on Postgres and the provider simulator. Usage
 * grows by 2 calls every 100 ms; the 1.00 threshold is reached at call 67 (1.005 → 1.01).
 */
const TASK_QUEUE = 'progressive-latency';
const logger = pino({ level: 'warn' });

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let simulator: Awaited<ReturnType<typeof startProviderSimulator>>;
let entitlements: Entitlements;
let worker: Worker;
let running: Promise<void>;
let meterId: string;

before(async () => {
  [env, db] = await Promise.all([localEnvironment(), createTestDatabase()]);
  simulator = await startProviderSimulator({ port: await freePort() });
  meterId = await seedHourlyPlan(db.pool);
  entitlements = await startEntitlements({ databaseUrl: db.url, clock: systemClock, logger, upgradeUrl: '/upgrade', topUpUrl: '/top-up' });
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowsPath,
    activities: realActivities(db.pool, simulator.url),
  });
  running = worker.run();
});

after(async () => {
  worker?.shutdown();
  await running;
  await entitlements?.close();
  await simulator?.close();
  await Promise.all([env?.teardown(), db?.drop()]);
});

describe('progressive billing, end to end', () => {
  test('the event that reaches a spend threshold is invoiced within seconds, with urgent reports only near it', async (t) => {
    const name = 'latency-1';
    const { customer } = await createCustomer(db.pool, { external_id: name, name, currency: 'USD' }, 'system');
    const created = await createSubscription(db.pool, {
      customerId: customer.id,
      planCode: 'hourly',
      anchor: new Date(),
      actor: 'system',
      spendThresholds: { amounts: ['1.00'], every: null },
    });
    assert.ok(created.created);
    await env.client.workflow.start(billingPeriodWorkflow, {
      taskQueue: TASK_QUEUE,
      workflowId: workflowIdFor(name),
      args: [{ terms: termsOf(created.subscription), allowedLatenessMs: 60_000, dunning: [] }],
    });
    // The API process learns the spend decision point as it learns quota state: NOTIFY into memory.
    const published = await waitFor(() => entitlements.store.quotaOf(customer.id, 'api_calls'), {
      description: 'the spend decision point in the entitlement store',
    });
    assert.equal(published.nextDecision, '66.333333');

    const registry = new Registry();
    const signaler = new UsageSignaler({ client: env.client, logger, quotaOf: (c, m) => entitlements.store.quotaOf(c, m), registry });
    const writer = new IngestWriter(db.pool);
    let stored = 0;
    let reachedAt: number | undefined;
    const interim = async () =>
      (
        await db.pool.query<{ finalized_at: Date; total: string }>(
          `select finalized_at, total::text from invoices where customer_id = $1 and kind = 'interim' and finalized_at is not null`,
          [customer.id],
        )
      ).rows[0];
    try {
      while (!(await interim())) {
        assert.ok(stored < 400, 'no interim invoice after 400 calls');
        const at = new Date().toISOString();
        const events = [1, 2].map(() => ({
          customer: name,
          customerId: customer.id,
          eventId: `e-${++stored}`,
          meterId,
          eventTime: at,
          receivedAt: at,
          value: null,
          properties: '{}',
          timestampProvided: true,
          late: false,
        }));
        const { outcomes } = await writer.write(events);
        assert.ok(outcomes.every((o) => o.status === 'accepted'));
        signaler.record(events.map(() => ({ customer: name, customerId: customer.id, meter: 'api_calls', quantity: '1', eventTime: at })));
        if (reachedAt === undefined && stored >= 67) reachedAt = Date.now();
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const invoice = (await interim())!;
      const latency = invoice.finalized_at.getTime() - reachedAt!;
      const counts = Object.fromEntries(
        (await registry.getSingleMetric('usage_reports_total')!.get()).values.map((v) => [v.labels.kind, v.value]),
      );
      t.diagnostic(
        `threshold reached (call 67) → interim invoice finalized: ${latency} ms; calls stored by then: ${stored}; reports: ${JSON.stringify(counts)}`,
      );
      // Reaching takes one signaler tick (≤ 1 s) plus the workflow's read, pricing, draft and finalize.
      assert.ok(latency < 5000, `${latency} ms`);
      // Far from the point (below 0.9 × 66.33 calls) nothing is reported: only urgent reports, and no slow one yet.
      assert.equal(counts.slow ?? 0, 0);
      assert.ok(Number(invoice.total) >= 1.01, invoice.total);
    } finally {
      await signaler.stop();
    }
  });
});
