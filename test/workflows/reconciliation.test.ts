import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Client, Connection, WorkflowContinuedAsNewError, type WorkflowHandle } from '@temporalio/client';
import { MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { freePort } from '../../scripts/free-port';
import { InvoiceService } from '../../src/invoices/service';
import { createSubscription } from '../../src/subscriptions/store';
import { systemClock } from '../../src/clock';
import type { ReconciliationSummary } from '../../src/domain/reconciliation';
import type { ReconciliationInput } from '../../src/domain/reconciliation-input';
import { createCustomer } from '../../src/customers/store';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import type { PaymentProvider } from '../../src/provider/payment-provider';
import { startProviderSimulator } from '../../src/provider/simulator';
import { temporalCliPath } from '../../src/temporal/binaries';
import { billingPeriodWorkflow, workflowIdFor } from '../../src/workflows/billing-period';
import { collectionWorkflowIdFor, type InvoiceCollectionResult } from '../../src/workflows/invoice-collection';
import { approveSignal, dismissSignal, reconciliationWorkflow, reportQuery, retrySignal } from '../../src/workflows/reconciliation';
import { workflowsPath } from '../../src/temporal/worker';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';
import { timeSkippingEnvironment } from '../support/temporal';
import { seedHourlyPlan } from '../support/hourly-plan';
import { storeEvents } from '../support/usage-events';
import { waitFor } from '../support/wait-for';
import { collectionOf, type CollectionOutcome } from '../support/collection';
import { realActivities } from '../support/activities';

/*
 * Reconciliation with nothing replaced: invoices produced by the real billing workflow and its
 * activities on Postgres, charged through the provider simulator over HTTP, then a discrepancy
 * injected behind the invoice path's back, found by the reconciliation workflow on the
 * time-skipping server, and corrected once approved. Late usage is never adjusted here
 * (lookback 0), so late events are always beyond the lookback.
 */
const taskQueue = 'reconciliation';
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let db: TestDatabase;
let simulator: Awaited<ReturnType<typeof startProviderSimulator>>;
let provider: PaymentProvider;
let worker: Worker;
let running: Promise<void>;
let meterId: string;
let acme: Billed, intact: Billed, altered: Billed, voided: Billed, globex: Billed, cli: Billed;

const activities = () => realActivities(db.pool, provider, 0);

before(async () => {
  [env, bundle, db] = await Promise.all([timeSkippingEnvironment(), bundleWorkflowCode({ workflowsPath }), createTestDatabase()]);
  simulator = await startProviderSimulator({ port: await freePort() });
  provider = createHttpPaymentProvider({ baseUrl: simulator.url, timeoutMs: 2000 });
  meterId = await seedHourlyPlan(db.pool);
  worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: activities() });
  running = worker.run();
  ({ acme, intact, altered, voided, globex, cli } = await billedTogether({
    acme: { calls: 120 },
    intact: { calls: 10 },
    altered: { calls: 50 },
    voided: { calls: 10, declined: true },
    globex: { calls: 120 },
    cli: { calls: 20 },
  }));
});
after(async () => {
  worker?.shutdown();
  await running;
  await env?.teardown();
  await simulator?.close();
  await db?.drop();
});

let customers = 0;
const HOUR = 3_600_000;

const insertEvents = (customerId: string, from: Date, count: number) => storeEvents(db.pool, { customerId, meterId, from, count });

/**
 * A customer subscribed to the hourly plan from `anchor` (the test server's now by default), with
 * `calls` events in its first period.
 */
async function subscribed(calls: number, anchor?: Date) {
  const name = `customer-${++customers}`;
  const { customer } = await createCustomer(db.pool, { external_id: name, name, currency: 'USD' }, 'system');
  const start = anchor ?? new Date(await env.currentTimeMs());
  const created = await createSubscription(db.pool, { customerId: customer.id, planCode: 'hourly', anchor: start, actor: 'system' });
  assert.ok(created.created);
  await insertEvents(customer.id, start, calls);
  const terms = {
    subscriptionId: created.subscription.id,
    customer: name,
    customerId: customer.id,
    planCode: 'hourly',
    limits: [],
    anchor: start.toISOString(),
    interval: { kind: 'duration' as const, iso: 'PT1H' },
  };
  return {
    name,
    customerId: customer.id,
    anchor: start,
    terms,
    scope: { period_start: start.toISOString(), period_end: new Date(start.getTime() + HOUR).toISOString(), customer: name },
  };
}

type Billed = Awaited<ReturnType<typeof subscribed>> & { invoiceId: string; collection: CollectionOutcome };

/**
 * Customers whose first period is billed by the real billing workflow: closed, invoiced, finalized
 * and collected. All are started first and then awaited, so time skips once for all of them (the
 * test server skips while a result is awaited). Each workflow is then stopped, so later periods
 * add no invoices.
 */
async function billedTogether<K extends string>(specs: Record<K, { calls: number; declined?: boolean }>): Promise<Record<K, Billed>> {
  const started = [];
  for (const [key, spec] of Object.entries<{ calls: number; declined?: boolean }>(specs)) {
    const customer = await subscribed(spec.calls);
    if (spec.declined) {
      const fault = { match: { customerId: customer.customerId }, fault: 'decline', declineCode: 'card_declined' };
      await fetch(`${simulator.url}/_sim/faults`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(fault),
      });
    }
    const billing = await env.client.workflow.start(billingPeriodWorkflow, {
      taskQueue,
      workflowId: workflowIdFor(customer.name),
      args: [{ terms: customer.terms, allowedLatenessMs: 60_000, dunning: [], usageReportIntervalMs: 300_000 }],
    });
    started.push({ key: key as K, customer, billing });
  }
  const billed = {} as Record<K, Billed>;
  for (const { key, customer, billing } of started) {
    const firstRun = env.client.workflow.getHandle(billing.workflowId, billing.firstExecutionRunId, { followRuns: false });
    await assert.rejects(firstRun.result(), WorkflowContinuedAsNewError);
    const { rows } = await db.pool.query<{ id: string }>('select id from invoices where customer_id = $1', [customer.customerId]);
    const invoiceId = rows[0]!.id;
    const collection = await collectionOf(env.client, db.pool, invoiceId);
    billed[key] = { ...customer, invoiceId, collection };
  }
  for (const { billing } of started) await billing.terminate('these tests reconcile the first period only');
  return billed;
}

const reconcile = (workflowId: string, input: ReconciliationInput) =>
  env.client.workflow.start(reconciliationWorkflow, { taskQueue, workflowId, args: [input] });
const awaitingDecision = (handle: WorkflowHandle) =>
  waitFor(
    async () => {
      const report = await handle.query(reportQuery);
      return report.status === 'awaiting_decision' ? report : undefined;
    },
    { description: 'the run waits for a decision' },
  );
/** The run's result; a run still waiting for a decision fails the test with its report instead of hanging it. */
async function finished(handle: WorkflowHandle): Promise<ReconciliationSummary> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => void handle.query(reportQuery).then((report) => reject(new Error(`the run did not finish: ${JSON.stringify(report)}`)), reject),
      60_000,
    );
  });
  try {
    return await Promise.race([handle.result() as Promise<ReconciliationSummary>, stuck]);
  } finally {
    clearTimeout(timer);
  }
}
const rowsOf = async <R extends object>(sql: string, params: unknown[]) => (await db.pool.query<R>(sql, params)).rows;
const findingsOf = (runId: string) =>
  rowsOf<{ kind: string; resolution: string; correction: string | null; carried: boolean }>(
    'select kind, resolution, correction::text, carried_from is not null as carried from reconciliation_findings where run_id = $1 order by id',
    [runId],
  );
const creditNotesOf = (invoiceId: string) =>
  rowsOf<{ amount: string; currency: string }>('select amount::text, currency from credit_notes where invoice_id = $1 order by amount', [
    invoiceId,
  ]);

describe('reconciliation workflow', () => {
  test('late events beyond the lookback and a second charge: reported, held for approval, corrected exactly once', async () => {
    assert.deepEqual(acme.collection, { outcome: 'paid', attempts: 1 });
    // Behind the invoice path's back: 30 more calls in the closed period, and a second charge under another key.
    await insertEvents(acme.customerId, new Date(acme.anchor.getTime() + 30 * 60_000), 30);
    await provider.charge({
      idempotencyKey: 'manual-charge-1',
      customerId: acme.customerId,
      invoiceId: acme.invoiceId,
      amountMinor: '275',
      currency: 'USD',
    });

    const runId = 'reconcile/test/late-and-double';
    const handle = await reconcile(runId, acme.scope);
    const report = await awaitingDecision(handle);
    assert.equal(report.invoicesChecked, 1);
    assert.deepEqual(report.pendingByKind, { usage_mismatch: 1, amount_mismatch: 1, double_charge: 1 });
    // 150 calls cost 1.00 + 1.50 + 0.625 → 0.63 = 3.13 against 2.75 billed: 0.38 owed by the customer; 2.75 charged twice owed back.
    assert.deepEqual(report.corrections, { count: 2, totals: { USD: '2.37' } });
    assert.deepEqual((await handle.describe()).memo?.status, 'awaiting_decision');
    assert.equal(
      (await rowsOf<{ status: string }>('select status from reconciliation_runs where id = $1', [runId]))[0]!.status,
      'awaiting_decision',
    );
    assert.deepEqual(await creditNotesOf(acme.invoiceId), [], 'nothing is corrected before the approval');

    // A double click in the UI: both signals arrive, the corrections happen once.
    await handle.signal(approveSignal);
    await handle.signal(approveSignal);
    const done = await finished(handle);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.findings, { total: 3, pending: 0, corrected: 3, dismissed: 0 });
    assert.deepEqual(await creditNotesOf(acme.invoiceId), [
      { amount: '-0.38', currency: 'USD' },
      { amount: '2.75', currency: 'USD' },
    ]);
    const audit = await rowsOf<{ actor: string; n: string }>(
      `select actor, count(*) as n from audit_log where action = 'reconciliation.corrected' and subject_id = $1 group by actor`,
      [acme.invoiceId],
    );
    assert.deepEqual(audit, [{ actor: `workflow:${runId}`, n: '3' }]);
    // What was decided stays as decided, whatever code or hand-written SQL tries.
    await assert.rejects(db.pool.query(`update credit_notes set amount = 0.01 where invoice_id = $1`, [acme.invoiceId]), /append-only/);
    await assert.rejects(db.pool.query(`delete from reconciliation_findings where run_id = $1`, [runId]), /it is kept/);
    await assert.rejects(
      db.pool.query(`update reconciliation_findings set resolution = 'dismissed', resolution_note = 'x' where run_id = $1`, [runId]),
      /already corrected/,
    );

    // Reconciling again, under another id and under the same one: all corrected, nothing new, no waiting.
    const again = await finished(await reconcile('reconcile/test/late-and-double-again', acme.scope));
    assert.deepEqual(again.findings, { total: 3, pending: 0, corrected: 3, dismissed: 0 });
    assert.deepEqual(
      (await findingsOf('reconcile/test/late-and-double-again')).map((f) => [f.kind, f.resolution, f.carried]),
      [
        ['usage_mismatch', 'corrected', true],
        ['amount_mismatch', 'corrected', true],
        ['double_charge', 'corrected', true],
      ],
    );
    const rerun = await finished(await reconcile(runId, acme.scope));
    assert.equal(rerun.status, 'completed');
    assert.deepEqual(rerun.findings, { total: 3, pending: 0, corrected: 3, dismissed: 0 });
    assert.equal((await findingsOf(runId)).length, 3);
    assert.equal((await creditNotesOf(acme.invoiceId)).length, 2);
  });

  test('an intact period: no findings, completed without waiting', async () => {
    const result = await finished(await reconcile('reconcile/test/intact', intact.scope));
    assert.equal(result.status, 'completed');
    assert.equal(result.invoicesChecked, 1);
    assert.deepEqual(result.findings, { total: 0, pending: 0, corrected: 0, dismissed: 0 });
    assert.deepEqual(await findingsOf('reconcile/test/intact'), []);
  });

  test('an invoice total altered in the database: found; retry after the fix finds nothing and corrects nothing', async () => {
    // 1.00 + 50 × 0.015 = 1.75, rewritten past the immutability trigger as a rogue script would.
    await db.pool.query('alter table invoices disable trigger user');
    await db.pool.query(`update invoices set total = '17.50' where id = $1`, [altered.invoiceId]);
    await db.pool.query('alter table invoices enable trigger user');

    const runId = 'reconcile/test/altered';
    const handle = await reconcile(runId, altered.scope);
    const report = await awaitingDecision(handle);
    assert.deepEqual(
      report.pending.map((f) => [f.kind, f.correction, f.currency]),
      [['amount_mismatch', '15.75', 'USD']],
    );

    await db.pool.query('alter table invoices disable trigger user');
    await db.pool.query(`update invoices set total = '1.75' where id = $1`, [altered.invoiceId]);
    await db.pool.query('alter table invoices enable trigger user');
    await handle.signal(retrySignal);
    const result = await finished(handle);
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.findings, { total: 0, pending: 0, corrected: 0, dismissed: 0 });
    assert.deepEqual(await findingsOf(runId), [], 'the recomputation replaced the pending finding');
    assert.deepEqual(await creditNotesOf(altered.invoiceId), []);
  });

  test('a period with events but no invoice: dismissed, and still dismissed when reconciled again', async () => {
    // Subscribed two hours ago, with events in its first period, and never billed.
    const forgotten = await subscribed(5, new Date((await env.currentTimeMs()) - 2 * HOUR));
    const handle = await reconcile('reconcile/test/missing', forgotten.scope);
    const report = await awaitingDecision(handle);
    assert.deepEqual(
      report.pending.map((f) => [f.kind, f.invoiceId, f.correction]),
      [['missing_invoice', null, null]],
    );
    assert.deepEqual(report.corrections, { count: 0, totals: {} });
    await handle.signal(dismissSignal, { reason: 'invoiced by hand' });
    assert.deepEqual((await finished(handle)).findings, { total: 1, pending: 0, corrected: 0, dismissed: 1 });
    assert.equal(
      (
        await rowsOf<{ n: string }>(`select count(*) as n from audit_log where action = 'reconciliation.dismissed' and subject_id = $1`, [
          forgotten.customerId,
        ])
      )[0]!.n,
      '1',
    );

    const again = await finished(await reconcile('reconcile/test/missing-again', forgotten.scope));
    assert.deepEqual(again.findings, { total: 1, pending: 0, corrected: 0, dismissed: 1 });
  });

  test('a period with events but no invoice: approve issues it under its natural key, finalized and charged once; approving, retrying and re-running change nothing', async () => {
    // Subscribed two hours ago, 30 events in its first period, and never billed (the workflow that lost it is gone).
    const forgotten = await subscribed(30, new Date((await env.currentTimeMs()) - 2 * HOUR));
    const invoicesOf = () =>
      rowsOf<{ id: string; period_start: Date; period_end: Date; status: string; total: string; usage: Record<string, string> }>(
        'select id, period_start, period_end, status, total::text, usage from invoices where customer_id = $1 order by period_start',
        [forgotten.customerId],
      );
    const runId = 'reconcile/test/missing-issued';
    const handle = await reconcile(runId, forgotten.scope);
    const report = await awaitingDecision(handle);
    assert.deepEqual(
      report.pending.map((f) => [f.kind, f.invoiceId, f.correction]),
      [['missing_invoice', null, null]],
    );
    assert.deepEqual(await invoicesOf(), [], 'nothing is issued before the approval');

    // A double click in the UI: both signals arrive, the invoice is issued once.
    await handle.signal(approveSignal);
    await handle.signal(approveSignal);
    const done = await finished(handle);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.findings, { total: 1, pending: 0, corrected: 1, dismissed: 0 });
    const [invoice, ...others] = await invoicesOf();
    assert.deepEqual(others, []);
    // The period's own invoice: 1.00 + 30 × 0.015.
    assert.deepEqual(
      { start: invoice!.period_start, end: invoice!.period_end, total: invoice!.total, usage: invoice!.usage },
      { start: forgotten.anchor, end: new Date(forgotten.anchor.getTime() + HOUR), total: '1.45', usage: { api_calls: '30' } },
    );
    const collection: InvoiceCollectionResult = await env.client.workflow.getHandle(collectionWorkflowIdFor(invoice!.id)).result();
    assert.deepEqual(collection, { outcome: 'paid', attempts: 1 });
    assert.deepEqual(
      (await provider.listCharges({ invoiceId: invoice!.id })).map((c) => [c.status, c.amountMinor]),
      [['succeeded', '145']],
    );
    const audited = async () =>
      rowsOf<{ action: string; actor: string }>(
        `select action, actor from audit_log where subject_id = $1 and action like '%.%' order by id`,
        [invoice!.id],
      );
    const trail = [
      { action: 'invoice.drafted', actor: `workflow:${runId}` },
      { action: 'invoice.finalized', actor: `workflow:${runId}` },
      { action: 'reconciliation.invoice_issued', actor: `workflow:${runId}` },
    ];
    assert.deepEqual(
      (await audited()).filter((a) => a.action !== 'charge.succeeded'),
      trail,
    );
    const [finding] = await rowsOf<{ id: string; resolution_note: string }>(
      'select id, resolution_note from reconciliation_findings where run_id = $1',
      [runId],
    );
    assert.equal(finding!.resolution_note, `invoice ${invoice!.id} issued for the period`);

    // The approval's activities retried: the same invoice (its natural key), no second audit entry.
    const activity = new MockActivityEnvironment();
    const { invoices }: { invoices: unknown[] } = await activity.run(activities().invoicesToIssue, { runId });
    assert.deepEqual(invoices, [], 'nothing left to issue');
    const period = {
      subscriptionId: forgotten.terms.subscriptionId,
      customerId: forgotten.customerId,
      planCode: 'hourly',
      periodStart: forgotten.scope.period_start,
      periodEnd: forgotten.scope.period_end,
    };
    assert.deepEqual(
      await activity.run(activities().draftInvoice, period),
      { invoiceId: invoice!.id },
      'the billing workflow would find the same invoice',
    );
    await activity.run(activities().recordIssuedInvoice, { runId, findingId: Number(finding!.id), invoiceId: invoice!.id });

    // Reconciled again, under the same id and another: the invoice is there and intact, nothing is issued or charged again.
    assert.deepEqual((await finished(await reconcile(runId, forgotten.scope))).findings, {
      total: 1,
      pending: 0,
      corrected: 1,
      dismissed: 0,
    });
    const again = await finished(await reconcile('reconcile/test/missing-issued-again', forgotten.scope));
    assert.deepEqual([again.invoicesChecked, again.findings], [1, { total: 0, pending: 0, corrected: 0, dismissed: 0 }]);
    assert.equal((await invoicesOf()).length, 1);
    assert.equal((await provider.listCharges({ invoiceId: invoice!.id })).length, 1);
    assert.deepEqual(
      (await audited()).filter((a) => a.action !== 'charge.succeeded'),
      trail,
    );
  });

  test('a charge on a void invoice, with auto_approve: owed back at once, without waiting', async () => {
    assert.deepEqual(voided.collection, { outcome: 'payment_failed', attempts: 1 });
    const voiding = await new InvoiceService(db.pool, systemClock).void('system', voided.invoiceId, 'customer left');
    assert.equal(voiding.ok && voiding.value.outcome, 'voided');
    await provider.charge({
      idempotencyKey: 'manual-charge-2',
      customerId: voided.customerId,
      invoiceId: voided.invoiceId,
      amountMinor: '115',
      currency: 'USD',
    });

    const result = await finished(await reconcile('reconcile/test/void', { ...voided.scope, auto_approve: true }));
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.findings, { total: 1, pending: 0, corrected: 1, dismissed: 0 });
    assert.deepEqual(
      (await findingsOf('reconcile/test/void')).map((f) => [f.kind, f.resolution, f.correction]),
      [['charged_void_invoice', 'corrected', '1.15']],
    );
    assert.deepEqual(await creditNotesOf(voided.invoiceId), [{ amount: '1.15', currency: 'USD' }]);
  });

  test('an input finance mistyped fails the run at once with the reason', async () => {
    const handle = await reconcile('reconcile/test/typo', { period_start: '2026-11-01', period_end: '2026-10-01' });
    await assert.rejects(handle.result(), (err: Error) =>
      /period_end must be after period_start/.test(String((err.cause as Error | undefined)?.message)),
    );
  });
});

describe('reconciliations API', () => {
  let app: KeysTestApp;
  let admin: string;
  let restricted: string;
  before(async () => {
    app = await startKeysApp(db, {
      billing: { client: env.client, taskQueue, allowedLatenessMs: 60_000, dunning: [], usageReportIntervalMs: 300_000 },
    });
    admin = (await app.issue({ scopes: ['billing:admin', 'billing:read'] })).secret;
    restricted = (await app.issue({ scopes: ['billing:admin', 'billing:read'], customer: 'customer-1' })).secret;
  });
  after(async () => {
    await app?.close();
  });
  const call = async (method: string, path: string, body?: unknown, key = admin) => {
    const res = await app.call(method, path, key, body);
    return { status: res.status, type: res.headers.get('content-type') ?? '', body: (await res.json()) as any };
  };

  test('start (a retry finds the same run), report, approve, then 409', async () => {
    await insertEvents(globex.customerId, new Date(globex.anchor.getTime() + 10 * 60_000), 30);

    const started = await call('POST', '/v1/reconciliations', globex.scope);
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const id = `reconcile/${globex.anchor.toISOString()}/${globex.name}`;
    assert.equal(started.body.id, id);
    const firstRun = (await env.client.workflow.getHandle(id).describe()).runId;
    const retried = await call('POST', '/v1/reconciliations', globex.scope);
    assert.equal(retried.status, 202);
    assert.equal(
      (await env.client.workflow.getHandle(id).describe()).runId,
      firstRun,
      'USE_EXISTING: the retry did not start a second run',
    );

    const report = await waitFor(
      async () => {
        const r = await call('GET', started.body.status_url);
        return r.status === 200 && r.body.status === 'awaiting_decision' ? r.body : undefined;
      },
      { description: 'the report waits for a decision' },
    );
    assert.equal(report.started_by.startsWith('key:'), true);
    assert.deepEqual(
      report.findings.map((f: any) => [f.kind, f.resolution, f.correction]),
      [
        ['usage_mismatch', 'pending', null],
        ['amount_mismatch', 'pending', '-0.38'],
      ],
    );
    // The id with its slashes as they are reaches the same run.
    assert.equal((await call('GET', `/v1/reconciliations/${id}`)).body.id, id);

    assert.equal((await call('POST', `/v1/reconciliations/${encodeURIComponent(id)}/approve`)).status, 202);
    const completed = await waitFor(
      async () => {
        const r = await call('GET', `/v1/reconciliations/${id}`);
        return r.body.status === 'completed' ? r.body : undefined;
      },
      { description: 'the run completes' },
    );
    assert.deepEqual(
      completed.credit_notes.map((c: any) => [c.invoice_id, c.amount, c.currency]),
      [[globex.invoiceId, '-0.38', 'USD']],
    );
    assert.deepEqual(completed.counts, { findings: 2, pending: 0, corrected: 2, dismissed: 0 });

    const late = await call('POST', `/v1/reconciliations/${id}/retry`);
    assert.equal(late.status, 409);
    assert.match(late.type, /^application\/problem\+json/);

    // Started again once completed: a new execution of the same run, whose report never shows the old end as its own.
    assert.equal((await call('POST', '/v1/reconciliations', globex.scope)).status, 202);
    const reopened = (await call('GET', `/v1/reconciliations/${id}`)).body;
    assert.ok(reopened.status === 'running' || reopened.completed_at > completed.completed_at, JSON.stringify(reopened));
    // Awaiting the run's result through the client also lets the time-skipping server skip any
    // retry backoff an activity meets on a loaded machine (polling alone would wait in real time).
    await env.client.workflow.getHandle(id).result();
    const rerun = await waitFor(
      async () => {
        const r = await call('GET', `/v1/reconciliations/${id}`);
        return r.body.status === 'completed' ? r.body : undefined;
      },
      { description: 'the re-run completes' },
    );
    assert.deepEqual(rerun.counts, { findings: 2, pending: 0, corrected: 2, dismissed: 0 });
    assert.equal(rerun.credit_notes.length, 1);
  });

  test('refusals: invalid input, unknown customer, unknown run, restricted key', async () => {
    const invalid = await call('POST', '/v1/reconciliations', { period_start: '2026-11-01', period_end: '2026-10-01' });
    assert.equal(invalid.status, 400);
    assert.deepEqual(invalid.body.errors, [{ pointer: '#/period_end', detail: 'period_end must be after period_start' }]);
    assert.equal(
      (await call('POST', '/v1/reconciliations', { period_start: '2026-11-01', period_end: '2026-12-01', customer: 'nobody' })).status,
      422,
    );
    assert.equal((await call('GET', '/v1/reconciliations/reconcile/nothing/all')).status, 404);
    assert.equal((await call('POST', '/v1/reconciliations/reconcile/nothing/all/approve')).status, 404);
    assert.equal(
      (await call('POST', '/v1/reconciliations', { period_start: '2026-11-01', period_end: '2026-12-01' }, restricted)).status,
      403,
    );
  });

  test('Temporal unreachable: 503 problem, and nothing recorded', async () => {
    // A real client to a port nothing listens on, without the SDK's retries so the answer is quick.
    const connection = Connection.lazy({ address: `127.0.0.1:${await freePort()}`, interceptors: [] });
    const offline = await startKeysApp(db, {
      billing: { client: new Client({ connection }), taskQueue, allowedLatenessMs: 60_000, dunning: [], usageReportIntervalMs: 300_000 },
    });
    try {
      const key = (await offline.issue({ scopes: ['billing:admin'] })).secret;
      const res = await offline.call('POST', '/v1/reconciliations', key, { period_start: '2030-01-01', period_end: '2030-02-01' });
      assert.equal(res.status, 503);
      assert.match(((await res.json()) as { type: string }).type, /unavailable$/);
      assert.deepEqual(await rowsOf(`select id from reconciliation_runs where period_start = '2030-01-01'`, []), []);
    } finally {
      await offline.close();
      await connection.close();
    }
  });
});

describe('started with the Temporal CLI, exactly as the UI form does', () => {
  test('temporal workflow start --input <json> runs the reconciliation to its report', async () => {
    const id = `reconcile/cli/${cli.name}`;
    const input = JSON.stringify({ period_start: cli.scope.period_start, period_end: cli.scope.period_end, customer: cli.name });
    await promisify(execFile)(temporalCliPath(), [
      'workflow',
      'start',
      '--address',
      env.address,
      '--namespace',
      'default',
      '--task-queue',
      taskQueue,
      '--type',
      'reconciliationWorkflow',
      '--workflow-id',
      id,
      '--input',
      input,
    ]);
    const result = await finished(env.client.workflow.getHandle(id));
    assert.equal(result.status, 'completed');
    assert.equal(result.invoicesChecked, 1);
    const [run] = await rowsOf<{ status: string; started_by: string; findings: number }>(
      'select status, started_by, findings from reconciliation_runs where id = $1',
      [id],
    );
    assert.deepEqual(run, { status: 'completed', started_by: 'temporal', findings: 0 });
  });
});
