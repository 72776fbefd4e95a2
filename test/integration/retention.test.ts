import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import { defaultActivityInfo, MockActivityEnvironment } from '@temporalio/testing';
import { createDraftInvoice } from '../../src/activities/draft-invoice';
import { createFinalizeInvoice } from '../../src/activities/finalize-invoice';
import { systemClock } from '../../src/clock';
import { createCustomer } from '../../src/customers/store';
import { planSchema } from '../../src/domain/plan';
import { getInvoice } from '../../src/invoices/store';
import { createMeter } from '../../src/meters/store';
import { createPlan } from '../../src/plans/store';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import { startProviderSimulator, type ProviderSimulator } from '../../src/provider/simulator';
import { findDiscrepancies } from '../../src/reconciliations/discrepancies';
import { archiveFileName } from '../../src/retention/archive';
import { createSubscription } from '../../src/subscriptions/store';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { storeEvents } from '../support/usage-events';

/*
 * `npx meterflow events archive` against a real PostgreSQL: billed periods' raw events go to gzip
 * NDJSON files that hold exactly the deleted rows, re-running neither loses nor duplicates, and
 * invoices and reconciliation of recent periods keep working beside archived ones.
 */
const root = path.resolve(import.meta.dirname, '../..');
let db: TestDatabase;
let dir: string;
let provider: ProviderSimulator;
const ids = {} as { acme: string; globex: string; calls: string; tokens: string; acmeSub: string; globexSub: string };

const P1 = { start: new Date('2026-01-01T00:00:00Z'), end: new Date('2026-02-01T00:00:00Z') };
const P2 = { start: P1.end, end: new Date('2026-03-01T00:00:00Z') };
const P3 = { start: P2.end, end: new Date('2026-04-01T00:00:00Z') };

const activity = new MockActivityEnvironment({ ...defaultActivityInfo, workflowExecution: { workflowId: 'billing/x', runId: 'run-1' } });
async function invoice(customerId: string, subscriptionId: string, period: { start: Date; end: Date }): Promise<string> {
  const { invoiceId }: { invoiceId: string } = await activity.run(
    createDraftInvoice({ pool: db.pool, clock: systemClock, lookbackInvoices: 3 }),
    {
      subscriptionId,
      customerId,
      planCode: 'metered',
      periodStart: period.start.toISOString(),
      periodEnd: period.end.toISOString(),
    },
  );
  await activity.run(createFinalizeInvoice({ pool: db.pool, clock: systemClock }), { invoiceId });
  return invoiceId;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}
const cli = (args: string[]): Promise<Run> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      ['bin/meterflow.js', ...args],
      { cwd: root, env: { ...process.env, DATABASE_URL: db.url, DATA_DIR: dir } },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
    );
  });
const archive = async (args: string[] = []) => {
  const run = await cli([
    'events',
    'archive',
    '--out',
    path.join(dir, 'archive'),
    '--before',
    P2.start.toISOString(),
    '--retention-days',
    '0',
    '--json',
    ...args,
  ]);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as {
    periods_archived: number;
    events_archived: number;
    files: Array<{ file: string; events: number; sha256: string }>;
  };
};

/** The rows of a customer's period as an independent query renders them: what the file must hold. */
const periodRows = async (customerId: string, period: { start: Date; end: Date }) =>
  (
    await db.pool.query<Record<string, unknown>>(
      `select $1::uuid as customer_id, event_id, (select id from meters where short_id = meter_short_id) as meter_id,
              to_char(event_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as event_time,
              to_char(received_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as received_at,
              value::text as value, properties::text as properties, timestamp_provided, late
         from usage_events where customer_short_id = (select short_id from customers where id = $1::uuid) and event_time >= $2 and event_time < $3 order by event_id`,
      [customerId, period.start, period.end],
    )
  ).rows.map((r) => ({ ...r, properties: JSON.parse(r.properties as string) as unknown }));

const fileRows = (file: string) =>
  gunzipSync(readFileSync(file))
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .sort((a, b) => String(a.event_id).localeCompare(String(b.event_id)));

before(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(tmpdir(), 'meterflow-retention-'));
  provider = await startProviderSimulator({ port: 0 });
  const acme = await createCustomer(db.pool, { external_id: 'acme', name: 'Acme', currency: 'USD' }, 'system');
  const globex = await createCustomer(db.pool, { external_id: 'globex/eu', name: 'Globex', currency: 'USD' }, 'system');
  const calls = await createMeter(
    db.pool,
    { code: 'api_calls', name: 'Calls', event_type: 'api_call', aggregation: 'count', filter: {} },
    'system',
  );
  const tokens = await createMeter(
    db.pool,
    { code: 'tokens', name: 'Tokens', event_type: 'tokens', aggregation: 'sum', value_property: 'n', filter: {} },
    'system',
  );
  const plan = planSchema({ knownMeters: new Set(['api_calls', 'tokens']) }).parse({
    id: 'metered',
    name: 'Metered',
    currency: 'USD',
    base_fee: '5.00',
    charges: [
      { meter: 'api_calls', model: 'per_unit', unit_price: '0.01' },
      { meter: 'tokens', model: 'per_unit', unit_price: '0.001' },
    ],
    interval: { kind: 'calendar_month' },
  });
  await createPlan(db.pool, plan, 'system');
  const acmeSub = await createSubscription(db.pool, {
    customerId: acme.customer.id,
    planCode: 'metered',
    anchor: P1.start,
    actor: 'system',
  });
  const globexSub = await createSubscription(db.pool, {
    customerId: globex.customer.id,
    planCode: 'metered',
    anchor: P1.start,
    actor: 'system',
  });
  assert.ok(acmeSub.created && globexSub.created);
  Object.assign(ids, {
    acme: acme.customer.id,
    globex: globex.customer.id,
    calls: calls.meter.id,
    tokens: tokens.meter.id,
    acmeSub: acmeSub.subscription.id,
    globexSub: globexSub.subscription.id,
  });
});
after(async () => {
  await provider?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

test('archive: files hold exactly the deleted rows, re-runs neither lose nor duplicate, recent periods still invoice and reconcile', async () => {
  for (const [customerId, n] of [
    [ids.acme, 1200],
    [ids.globex, 300],
  ] as const) {
    await storeEvents(db.pool, { customerId, meterId: ids.calls, from: P1.start, count: n });
    await storeEvents(db.pool, { customerId, meterId: ids.calls, from: P2.start, count: 40 });
  }
  // Exact values survive: microseconds, a NUMERIC beyond doubles, JSON numbers beyond doubles, odd ids.
  await db.pool.query(
    `insert into usage_events (customer_short_id, event_id, meter_short_id, event_time, received_at, value, properties, timestamp_provided, late)
     values ((select short_id from customers where id = $1::uuid), 'tok "1"\\n', (select short_id from meters where id = $2::uuid), '2026-01-15T10:00:00.123456Z', '2026-02-10T00:00:00.000001Z', 12345678901234567890.000000001,
             '{"n": "12345678901234567890.000000001", "big": 12345678901234567890123, "nested": {"ü": [1, null, true]}}', true, true),
            ((select short_id from customers where id = $1::uuid), 'tok-2', (select short_id from meters where id = $2::uuid), '2026-02-15T10:00:00Z', now(), 2.5, '{"n": "2.5"}', true, false)`,
    [ids.acme, ids.tokens],
  );
  const acme1 = await invoice(ids.acme, ids.acmeSub, P1);
  const globex1 = await invoice(ids.globex, ids.globexSub, P1);
  const acmeRows = await periodRows(ids.acme, P1);
  const globexRows = await periodRows(ids.globex, P1);
  assert.equal(acmeRows.length, 1201);

  // A crash of an earlier run left a file for globex's period behind, but no record and no deletion.
  const out = path.join(dir, 'archive');
  const globexFile = path.join(
    out,
    archiveFileName({ customerExternalId: 'globex/eu', customerId: ids.globex, periodStart: P1.start, periodEnd: P1.end }),
  );
  rmSync(out, { recursive: true, force: true });
  (await import('node:fs')).mkdirSync(out, { recursive: true });
  writeFileSync(globexFile, 'half a file');

  const first = await archive();
  assert.equal(first.periods_archived, 2);
  assert.equal(first.events_archived, 1201 + 300);

  // The files hold exactly the rows that were deleted; P2 is untouched.
  const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as {
    periods: Array<{ file: string; customer_id: string; events: number; sha256: string; invoice_id: string }>;
  };
  assert.equal(manifest.periods.length, 2);
  for (const [customerId, rows, invoiceId] of [
    [ids.acme, acmeRows, acme1],
    [ids.globex, globexRows, globex1],
  ] as const) {
    const entry = manifest.periods.find((p) => p.customer_id === customerId)!;
    const file = path.join(out, entry.file);
    assert.equal(entry.invoice_id, invoiceId);
    assert.equal(entry.events, rows.length);
    assert.equal(entry.sha256, createHash('sha256').update(readFileSync(file)).digest('hex'));
    assert.deepEqual(fileRows(file), rows);
    assert.deepEqual(await periodRows(customerId, P1), []);
    assert.equal((await periodRows(customerId, P2)).length, customerId === ids.acme ? 41 : 40);
  }
  const big = fileRows(path.join(out, manifest.periods.find((p) => p.customer_id === ids.acme)!.file)).find(
    (r) => r.event_id === 'tok "1"\\n',
  )!;
  assert.equal(big.value, '12345678901234567890.000000001');
  assert.equal(big.event_time, '2026-01-15T10:00:00.123456Z');

  const { rows: archived } = await db.pool.query<{ invoice_id: string; event_count: string }>(
    'select a.invoice_id, a.event_count::text from archived_periods a order by a.event_count desc',
  );
  assert.deepEqual(archived, [
    { invoice_id: acme1, event_count: '1201' },
    { invoice_id: globex1, event_count: '300' },
  ]);
  const { rows: audit } = await db.pool.query<{ subject_id: string; actor: string }>(
    `select subject_id, actor from audit_log where action = 'usage_events.archived' order by id`,
  );
  assert.deepEqual(new Set(audit.map((a) => a.subject_id)), new Set([acme1, globex1]));
  assert.ok(audit.every((a) => a.actor === 'cli'));

  // Re-running archives nothing more and rewrites nothing.
  const before = manifest.periods.map((p) =>
    createHash('sha256')
      .update(readFileSync(path.join(out, p.file)))
      .digest('hex'),
  );
  const again = await archive();
  assert.equal(again.periods_archived, 0);
  assert.deepEqual(
    manifest.periods.map((p) =>
      createHash('sha256')
        .update(readFileSync(path.join(out, p.file)))
        .digest('hex'),
    ),
    before,
  );
  assert.deepEqual(JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')), manifest);
  assert.equal(
    Number((await db.pool.query('select count(*) from audit_log where action = $1', ['usage_events.archived'])).rows[0].count),
    2,
  );

  // A recent period: invoiced from its raw events; the archived period is not "adjusted" to zero.
  const acme2 = await invoice(ids.acme, ids.acmeSub, P2);
  const inv2 = (await getInvoice(db.pool, acme2))!;
  assert.deepEqual(inv2.usage, { api_calls: '40', tokens: '2.5' });
  assert.deepEqual(
    inv2.lines.filter((l) => l.type === 'adjustment'),
    [],
  );

  // Reconciliation over both periods: the archived one is not recomputed (no false usage mismatch),
  // the recent one is, and finds a discrepancy when its raw events disagree with its invoice.
  const deps = {
    db: db.pool,
    provider: createHttpPaymentProvider({ baseUrl: provider.url, timeoutMs: 5_000 }),
    clock: systemClock,
    lookbackInvoices: 3,
  };
  const scope = { start: P1.start, end: P3.start, customerId: ids.acme, asOf: P3.start };
  const clean = await findDiscrepancies(deps, scope);
  assert.equal(clean.invoicesChecked, 2);
  assert.deepEqual(
    clean.found.filter((f) => ['usage_mismatch', 'amount_mismatch', 'missing_invoice'].includes(f.kind)),
    [],
  );
  // Two late events for P2; with no lookback left to adjust them, reconciliation must report them.
  await storeEvents(db.pool, { customerId: ids.acme, meterId: ids.calls, from: new Date(P2.start.getTime() + 3_600_000), count: 2 });
  const late = (await findDiscrepancies({ ...deps, lookbackInvoices: 0 }, scope)).found.filter((f) =>
    ['usage_mismatch', 'amount_mismatch', 'missing_invoice'].includes(f.kind),
  );
  assert.deepEqual(
    late.filter((f) => f.kind === 'usage_mismatch').map((f) => [f.invoiceId, f.subject, f.expected]),
    [[acme2, 'api_calls', { quantity: '42' }]],
  );
  assert.ok(!late.some((f) => f.invoiceId === acme1), JSON.stringify(late));
});
