import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { freePort } from '../../scripts/free-port';
import { createCustomer } from '../../src/customers/store';
import { toMinorUnits } from '../../src/domain/money';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import { startProviderSimulator, type ProviderSimulator } from '../../src/provider/simulator';
import { createSubscription } from '../../src/subscriptions/store';
import { billingPeriodWorkflow, workflowIdFor } from '../../src/workflows/billing-period';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { seedPlan } from '../support/hourly-plan';
import { localEnvironment } from '../support/temporal';
import { storeEvents } from '../support/usage-events';
import { waitFor } from '../support/wait-for';

/*
 * kill -9 in the middle of a herd of period closes. Every customer's period ends at the same
 * instant; two worker processes (the production entry point, src/main/worker.ts) close them on a
 * real Temporal dev server, PostgreSQL and the provider simulator. While the closes are running,
 * one worker is killed with SIGKILL and the provider goes away for a few seconds; a new worker
 * takes the dead one's place. Every period still ends in exactly one invoice, paid by exactly one
 * charge at the provider, and every billing workflow goes on into its next period.
 */
const CUSTOMERS = 24;
const PERIOD_SECONDS = 30;
const PROVIDER_DOWN_MS = 4000;
const taskQueue = 'close-herd-chaos';
const workerEntry = fileURLToPath(new URL('../../src/main/worker.ts', import.meta.url));

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let scratch: string;
let providerPort: number;
let simulator: ProviderSimulator | undefined;
const workers: ChildProcess[] = [];

const startSimulator = async () => {
  simulator = await startProviderSimulator({ port: providerPort, stateFile: join(scratch, 'provider-charges.ndjson') });
};

function startWorkerProcess(): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', workerEntry], {
    env: {
      ...process.env,
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: env.address,
      TEMPORAL_TASK_QUEUE: taskQueue,
      PROVIDER_URL: `http://127.0.0.1:${providerPort}`,
      PROVIDER_TIMEOUT_MS: '2000',
      // Few slots and a low provider rate: the herd lasts seconds, long enough to be hit mid-way.
      WORKER_MAX_CONCURRENT_ACTIVITIES: '2',
      PROVIDER_MAX_REQUESTS_PER_SECOND: '3',
      DATA_DIR: scratch,
      LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  workers.push(child);
  return child;
}

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'meterflow-chaos-'));
  [env, db, providerPort] = await Promise.all([localEnvironment(), createTestDatabase(), freePort()]);
  await startSimulator();
});

after(async () => {
  for (const child of workers) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await simulator?.close();
  await env?.teardown();
  await db?.drop();
  rmSync(scratch, { recursive: true, force: true });
});

test('a worker killed with SIGKILL and the provider lost mid-herd: one invoice and one charge per period, and every customer enters the next period', async (t) => {
  const interval = { kind: 'duration' as const, iso: `PT${PERIOD_SECONDS}S` };
  const meterId = await seedPlan(db.pool, { id: 'chaos', name: 'Chaos', period: interval.iso });
  const doomed = startWorkerProcess();
  startWorkerProcess();

  // Now, to the second: the first period begins at once, so the herd closes PERIOD_SECONDS from here.
  const anchor = new Date(Math.floor(Date.now() / 1000) * 1000);
  const periodEnd = anchor.getTime() + PERIOD_SECONDS * 1000;
  const handles = await Promise.all(
    Array.from({ length: CUSTOMERS }, async (_, i) => {
      const name = `chaos-${i}`;
      const { customer } = await createCustomer(db.pool, { external_id: name, name, currency: 'USD' }, 'system');
      const created = await createSubscription(db.pool, { customerId: customer.id, planCode: 'chaos', anchor, actor: 'system' });
      assert.ok(created.created);
      await storeEvents(db.pool, { customerId: customer.id, meterId, from: anchor, count: i + 1 });
      const terms = {
        subscriptionId: created.subscription.id,
        customer: name,
        customerId: customer.id,
        planCode: 'chaos',
        limits: [],
        anchor: anchor.toISOString(),
        interval,
      };
      return env.client.workflow.start(billingPeriodWorkflow, {
        taskQueue,
        workflowId: workflowIdFor(name),
        args: [{ terms, allowedLatenessMs: 0, dunning: ['PT1S'] }],
      });
    }),
  );
  assert.ok(Date.now() < periodEnd, 'the workflows started before their periods end');

  // The first period's invoices (the later periods, base fee only, go on closing every PERIOD_SECONDS).
  const paid = async () =>
    Number(
      (await db.pool.query<{ n: string }>(`select count(*) as n from invoices where status = 'paid' and period_start = $1`, [anchor]))
        .rows[0]!.n,
    );
  // Mid-herd: once the first period is paid, and before the last.
  await waitFor(paid, { description: 'the first close paid', until: (n) => n > 0, timeout: (PERIOD_SECONDS + 60) * 1000 });
  doomed.kill('SIGKILL');
  await simulator!.close();
  simulator = undefined;
  const paidAtKill = await paid();
  assert.ok(paidAtKill < CUSTOMERS, `the kill came mid-herd (${paidAtKill} of ${CUSTOMERS} paid)`);
  await once(doomed, 'exit');
  await new Promise((resolve) => setTimeout(resolve, PROVIDER_DOWN_MS));
  await startSimulator();
  startWorkerProcess();

  // A close in flight on the dead worker is retried after its activity's heartbeat timeout (1 minute).
  await waitFor(paid, { description: 'every period paid', until: (n) => n === CUSTOMERS, timeout: 180_000, interval: 250 });
  t.diagnostic(
    `killed with ${paidAtKill} of ${CUSTOMERS} paid; all paid ${((Date.now() - periodEnd) / 1000).toFixed(1)} s after the period end`,
  );

  // Every invoice of every period so far, paid or not yet: never a second charge, and a paid one
  // was paid by one charge at the provider, for its total.
  const { rows: invoices } = await db.pool.query<{ id: string; status: string; total: string; period_start: Date }>(
    `select id, status, total::text, period_start from invoices`,
  );
  assert.equal(invoices.filter((i) => i.period_start.getTime() === anchor.getTime()).length, CUSTOMERS, 'one invoice per period');
  const provider = createHttpPaymentProvider({ baseUrl: `http://127.0.0.1:${providerPort}`, timeoutMs: 2000 });
  for (const invoice of invoices) {
    const charges = (await provider.listCharges({ invoiceId: invoice.id })).filter((c) => c.status === 'succeeded');
    assert.ok(charges.length <= 1, `invoice ${invoice.id}: ${charges.length} charges at the provider`);
    if (invoice.status === 'paid') {
      assert.deepEqual(
        charges.map((c) => c.amountMinor),
        [toMinorUnits(invoice.total, 'USD')],
        `invoice ${invoice.id}: paid by one charge at the provider, for its total`,
      );
    }
  }
  // Every billing workflow went on into its next period (continue-as-new), none failed.
  for (const handle of handles) {
    const described = await env.client.workflow.getHandle(handle.workflowId).describe();
    assert.equal(described.status.name, 'RUNNING');
    assert.notEqual(described.runId, handle.firstExecutionRunId, `${handle.workflowId} entered its next period`);
  }
});
