import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { defaultActivityInfo, MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { freePort } from '../../scripts/free-port';
import { createDraftInvoice } from '../../src/activities/draft-invoice';
import { createFinalizeInvoice } from '../../src/activities/finalize-invoice';
import { createSubscription } from '../../src/subscriptions/store';
import { systemClock } from '../../src/clock';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import { startProviderSimulator } from '../../src/provider/simulator';
import { workflowsPath } from '../../src/temporal/worker';
import { billingState, workflowIdFor } from '../../src/workflows/billing-period';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';
import { localEnvironment } from '../support/temporal';
import { waitFor } from '../support/wait-for';
import { realActivities } from '../support/activities';

/*
 * The admin CLI as operators and scripts run it: the real binary in its own process, against a
 * real PostgreSQL, a real API (backfill) and a real Temporal dev server (subscriptions).
 */
const root = path.resolve(import.meta.dirname, '../..');
const pepper = `1:${'test-pepper-'.repeat(3)}`;

let db: TestDatabase;
let app: KeysTestApp;
let dir: string;
let writer: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `npx meterflow …` (the package's bin) in its own process; never rejects, so tests assert on the exit status. */
const cli = (args: string[], env: Record<string, string> = {}): Promise<Run> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      ['bin/meterflow.js', ...args],
      {
        cwd: root,
        env: { ...process.env, DATABASE_URL: db.url, API_KEY_PEPPERS: pepper, DATA_DIR: dir, ...env },
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
    );
  });

/** A command run with --json: exits with `code` and prints only JSON on stdout. */
async function json(args: string[], code = 0, env: Record<string, string> = {}): Promise<any> {
  const run = await cli([...args, '--json'], env);
  assert.equal(run.code, code, `exit ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

const count = async (sql: string, params: unknown[] = []) =>
  Number((await db.pool.query<{ n: string }>(`select count(*) as n from ${sql}`, params)).rows[0]!.n);

const plan = (id: string, basePrice: string) => ({
  id,
  name: `Plan ${id}`,
  currency: 'USD',
  base_fee: basePrice,
  charges: [
    {
      meter: 'api_calls',
      model: 'graduated',
      tiers: [
        { up_to: '1000', unit_price: '0.002' },
        { up_to: null, unit_price: '0.001' },
      ],
    },
  ],
  interval: { kind: 'calendar_month' },
});

function writeJson(name: string, value: unknown): string {
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(value));
  return file;
}

before(async () => {
  db = await createTestDatabase();
  app = await startKeysApp(db);
  dir = mkdtempSync(path.join(tmpdir(), 'meterflow-cli-'));
  writer = (await app.issue({ scopes: ['events:write'] })).secret;
});
after(async () => {
  await app?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('catalog commands', () => {
  test('customers create, list and show; repeating a create is safe, other attributes are refused', async () => {
    const created = await json(['customers', 'create', 'acme', '--name', 'Acme', '--currency', 'USD']);
    assert.deepEqual(
      { ...created, created_at: undefined },
      { external_id: 'acme', name: 'Acme', currency: 'USD', created: true, created_at: undefined },
    );
    // Independent commands run side by side: each is its own process.
    const [again, , , conflict, invalid] = await Promise.all([
      json(['customers', 'create', 'acme', '--name', 'Acme', '--currency', 'USD']),
      json(['customers', 'create', 'initech', '--name', 'Initech', '--currency', 'USD']),
      json(['customers', 'create', 'globex', '--name', 'Globex', '--currency', 'USD']),
      cli(['customers', 'create', 'acme', '--name', 'Acme Corp', '--currency', 'USD']),
      cli(['customers', 'create', 'x', '--name', 'X', '--currency', 'usd']),
    ]);
    assert.equal(again.created, false);
    assert.equal(conflict.code, 1);
    assert.match(conflict.stderr, /already exists with other attributes/);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /currency: an ISO 4217 code/);
    assert.equal(await count('customers'), 3);
    assert.equal(await count(`audit_log where action = 'customer.created' and actor = 'cli'`), 3, 'each creation audited once, as the CLI');

    const [list, firstPage, secondPage, shown, missing, human] = await Promise.all([
      json(['customers', 'list']),
      json(['customers', 'list', '--limit', '2']),
      json(['customers', 'list', '--after', 'globex']),
      json(['customers', 'show', 'initech']),
      cli(['customers', 'show', 'nobody', '--json']),
      cli(['customers', 'list']),
    ]);
    assert.deepEqual(
      list.data.map((c: any) => c.external_id),
      ['acme', 'globex', 'initech'],
    );
    assert.equal(list.next_cursor, null);
    assert.equal(firstPage.next_cursor, 'globex');
    assert.deepEqual(
      secondPage.data.map((c: any) => c.external_id),
      ['initech'],
    );
    assert.equal(shown.name, 'Initech');
    assert.deepEqual([missing.code, missing.stdout], [1, '']);
    assert.match(missing.stderr, /no customer "nobody"/);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /external id.*name.*currency/);
    assert.match(human.stdout, /initech\s*│\s*Initech\s*│\s*USD/);
  });

  test('meters create and list; one meter per event type', async () => {
    const created = await json([
      'meters',
      'create',
      'api_calls',
      '--name',
      'API calls',
      '--event-type',
      'api_call',
      '--aggregation',
      'count',
    ]);
    assert.equal(created.created, true);
    assert.equal(created.event_type, 'api_call');
    const tokens = await json([
      'meters',
      'create',
      'tokens',
      '--name',
      'Tokens',
      '--event-type',
      'tokens',
      '--aggregation',
      'sum',
      '--value-property',
      'tokens',
      '--filter',
      '{"model":"large","tier":1}',
    ]);
    assert.deepEqual(tokens.filter, { model: 'large', tier: 1 });
    const [again, clash, invalid] = await Promise.all([
      json([
        'meters',
        'create',
        'tokens',
        '--name',
        'Tokens',
        '--event-type',
        'tokens',
        '--aggregation',
        'sum',
        '--value-property',
        'tokens',
        '--filter',
        '{"tier":1,"model":"large"}',
      ]),
      cli(['meters', 'create', 'calls2', '--name', 'Calls', '--event-type', 'api_call', '--aggregation', 'count']),
      cli(['meters', 'create', 'sum_meter', '--name', 'S', '--event-type', 's', '--aggregation', 'sum']),
    ]);
    assert.equal(again.created, false, 'the same definition, keys in another order');
    assert.equal(await count(`audit_log where action = 'meter.created' and actor = 'cli'`), 2, 'each creation audited once, as the CLI');
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, /already feed meter "api_calls"/);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /value_property: sum meters need the value_property/);
    assert.deepEqual(
      (await json(['meters', 'list'])).data.map((m: any) => m.code),
      ['api_calls', 'tokens'],
    );
  });

  test('plans create --file, list and show; the plan is audited as cli and never changes', async () => {
    const file = writeJson('basic.json', plan('basic', '5.00'));
    const created = await json(['plans', 'create', '--file', file]);
    assert.equal(created.created, true);
    assert.deepEqual(created.charges, plan('basic', '5.00').charges);
    const [again, , changed, unknownMeter, absent] = await Promise.all([
      json(['plans', 'create', '--file', file]),
      json(['plans', 'create', '--file', writeJson('pro.json', plan('pro', '20.00'))]),
      cli(['plans', 'create', '--file', writeJson('basic-2.json', plan('basic', '6.00'))]),
      cli([
        'plans',
        'create',
        '--file',
        writeJson('bad.json', { ...plan('bad', '1.00'), charges: [{ meter: 'nope', model: 'per_unit', unit_price: '1' }] }),
      ]),
      cli(['plans', 'create', '--file', path.join(dir, 'absent.json')]),
    ]);
    assert.equal(again.created, false);
    assert.equal(changed.code, 1);
    assert.match(changed.stderr, /already exists with other terms/);
    assert.equal(unknownMeter.code, 2);
    assert.match(unknownMeter.stderr, /unknown meter "nope"/);
    assert.equal(absent.code, 2);
    assert.match(absent.stderr, /cannot read .*absent\.json/);

    const [list, pro, human] = await Promise.all([
      json(['plans', 'list']),
      json(['plans', 'show', 'pro']),
      cli(['plans', 'show', 'basic']),
    ]);
    assert.deepEqual(
      list.data.map((p: any) => p.id),
      ['basic', 'pro'],
    );
    assert.equal(pro.base_fee, '20.00');
    assert.match(human.stdout, /api_calls\s*│\s*graduated/);
    const { rows } = await db.pool.query(`select actor from audit_log where action = 'plan.created' order by id`);
    assert.deepEqual(rows, [{ actor: 'cli' }, { actor: 'cli' }]);
  });
});

describe('coupons and tax rates', () => {
  test('coupons create --file, list and apply; tax-rates add, list and archive; repeats are safe, audited as cli', async () => {
    const coupon = {
      code: 'WELCOME',
      name: 'Welcome',
      discount: { type: 'percentage', percent_off: '15' },
      duration: { kind: 'repeating', periods: 3 },
    };
    const created = await json(['coupons', 'create', '--file', writeJson('welcome.json', coupon)]);
    assert.deepEqual([created.created, created.discount], [true, coupon.discount]);
    assert.equal((await json(['coupons', 'create', '--file', writeJson('welcome.json', coupon)])).created, false);
    const bad = await cli([
      'coupons',
      'create',
      '--file',
      writeJson('bad-coupon.json', { ...coupon, code: 'BAD', duration: { kind: 'sometimes' } }),
    ]);
    assert.equal(bad.code, 2);
    assert.deepEqual(
      (await json(['coupons', 'list'])).data.map((c: any) => c.code),
      ['WELCOME'],
    );

    const applied = await json(['coupons', 'apply', 'globex', 'WELCOME']);
    assert.deepEqual([applied.created, applied.periods_used, applied.coupon.code], [true, 0, 'WELCOME']);
    assert.equal((await json(['coupons', 'apply', 'globex', 'WELCOME'])).created, false);
    const unknown = await cli(['coupons', 'apply', 'globex', 'NOPE']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no coupon "NOPE"/);
    assert.equal((await json(['coupons', 'applications', 'globex'])).data.length, 1);

    const rate = await json(['tax-rates', 'add', 'globex', '--code', 'vat', '--name', 'VAT 19%', '--percentage', '19']);
    assert.deepEqual([rate.created, rate.percentage, rate.inclusive, rate.meter], [true, '19', false, null]);
    const mixed = await cli(['tax-rates', 'add', 'globex', '--code', 'gst', '--name', 'GST', '--percentage', '5', '--inclusive']);
    assert.equal(mixed.code, 1);
    assert.match(mixed.stderr, /all inclusive or all exclusive/);
    assert.equal((await cli(['tax-rates', 'add', 'globex', '--code', 'x', '--name', 'X', '--percentage', 'ten'])).code, 2);
    assert.equal((await json(['tax-rates', 'list', 'globex'])).data.length, 1);
    assert.notEqual((await json(['tax-rates', 'archive', 'globex', 'vat'])).archived_at, null);
    assert.deepEqual((await json(['tax-rates', 'list', 'globex'])).data, []);
    const { rows } = await db.pool.query(
      `select action, actor from audit_log where action in ('coupon.created', 'coupon.applied', 'tax_rate.created', 'tax_rate.archived') order by id`,
    );
    assert.deepEqual(
      rows.map((r: any) => `${r.action}:${r.actor}`),
      ['coupon.created:cli', 'coupon.applied:cli', 'tax_rate.created:cli', 'tax_rate.archived:cli'],
    );
  });
});

describe('invoices', () => {
  const period = { start: new Date('2025-01-01T00:00:00Z'), end: new Date('2025-02-01T00:00:00Z') };
  let invoiceId: string;

  before(async () => {
    const customer = (await db.pool.query<{ id: string }>(`select id from customers where external_id = 'initech'`)).rows[0]!.id;
    const meter = (await db.pool.query<{ id: string }>(`select id from meters where code = 'api_calls'`)).rows[0]!.id;
    const sub = await createSubscription(db.pool, { customerId: customer, planCode: 'basic', anchor: period.start, actor: 'system' });
    assert.ok(sub.created);
    await db.pool.query(
      `insert into usage_events (customer_short_id, event_id, meter_short_id, event_time, received_at, value, properties, timestamp_provided, late)
       select (select short_id from customers where id = $1::uuid), 'inv-' || i, (select short_id from meters where id = $2::uuid), $3::timestamptz + i * interval '1 second', now(), null, '{}', true, false from generate_series(1, 1500) i`,
      [customer, meter, period.start],
    );
    // The period close as the worker runs it: the real draft and finalize activities.
    const activity = new MockActivityEnvironment({
      ...defaultActivityInfo,
      workflowExecution: { workflowId: 'billing/initech', runId: 'run-1' },
    });
    const drafted: { invoiceId: string } = await activity.run(
      createDraftInvoice({ pool: db.pool, clock: systemClock, lookbackInvoices: 3 }),
      {
        subscriptionId: sub.subscription.id,
        customerId: customer,
        planCode: 'basic',
        periodStart: period.start.toISOString(),
        periodEnd: period.end.toISOString(),
      },
    );
    await activity.run(createFinalizeInvoice({ pool: db.pool, clock: systemClock }), { invoiceId: drafted.invoiceId });
    invoiceId = drafted.invoiceId;
  });

  test('list filters by customer and status; show has the lines, their breakdowns and the charge', async () => {
    const [list, drafts, acme, nobody, lost] = await Promise.all([
      json(['invoices', 'list', '--customer', 'initech']),
      json(['invoices', 'list', '--status', 'draft']),
      json(['invoices', 'list', '--customer', 'acme']),
      cli(['invoices', 'list', '--customer', 'nobody']),
      cli(['invoices', 'list', '--status', 'lost']),
    ]);
    // 5.00 base fee + 1000 × 0.002 + 500 × 0.001
    assert.deepEqual(
      list.data.map((i: any) => [i.id, i.status, i.total]),
      [[invoiceId, 'finalized', '7.50']],
    );
    assert.equal(drafts.data.length, 0);
    assert.equal(acme.data.length, 0);
    assert.equal(nobody.code, 1);
    assert.equal(lost.code, 2);

    const [shown, human] = await Promise.all([json(['invoices', 'show', invoiceId]), cli(['invoices', 'show', invoiceId])]);
    assert.deepEqual(
      shown.lines.map((l: any) => [l.type, l.quantity, l.amount]),
      [
        ['base_fee', null, '5.00'],
        ['usage', '1500', '2.50'],
      ],
    );
    assert.deepEqual(
      shown.lines[1].breakdown.map((b: any) => [b.units, b.amount]),
      [
        ['1000', '2'],
        ['500', '0.5'],
      ],
    );
    assert.equal(shown.charge, null);
    assert.match(human.stdout, /line 2 breakdown/);
    assert.match(human.stdout, /charge: none yet/);
  });

  test('void takes a reason, is audited as cli, and converges when repeated', async () => {
    assert.equal((await cli(['invoices', 'void', invoiceId])).code, 2, '--reason is required');
    const voided = await json(['invoices', 'void', invoiceId, '--reason', 'billed in error']);
    assert.deepEqual([voided.status, voided.void_reason], ['void', 'billed in error']);
    assert.equal((await json(['invoices', 'void', invoiceId, '--reason', 'again'])).void_reason, 'billed in error');
    assert.equal(await count(`audit_log where action = 'invoice.voided' and actor = 'cli' and subject_id = $1`, [invoiceId]), 1);
    assert.equal((await cli(['invoices', 'void', '00000000-0000-4000-8000-000000000000', '--reason', 'x'])).code, 1);
    assert.equal((await cli(['invoices', 'show', 'not-a-uuid'])).code, 2);
  });
});

describe('audit verify', () => {
  test('exit 0 with the head when intact, 1 when an anchor does not match, 2 for a malformed anchor', async () => {
    const report = await json(['audit', 'verify']);
    assert.equal(report.ok, true);
    assert.equal(report.rows, await count('audit_log'));
    assert.match(`${report.head.seq}:${report.head.hash}`, /^\d+:[0-9a-f]{64}$/);

    const [anchored, wrong, malformed] = await Promise.all([
      json(['audit', 'verify', '--anchor', `${report.head.seq}:${report.head.hash}`]),
      cli(['audit', 'verify', '--anchor', `${report.head.seq}:${'0'.repeat(64)}`]),
      cli(['audit', 'verify', '--anchor', 'latest']),
    ]);
    assert.equal(anchored.ok, true);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stdout, /altered at position/);
    assert.match(wrong.stderr, /TAMPERED/);
    assert.equal(malformed.code, 2);
  });
});

describe('backfill', () => {
  const ndjson = () => path.join(dir, 'events.ndjson');
  const events = () => count(`usage_events`);
  const backfill = (file: string, ...args: string[]) =>
    json(['backfill', file, '--api-url', app.url, ...args], 0, { METERFLOW_API_KEY: writer });

  test('100,000 events from NDJSON through the API: the summary matches the database; a re-run stores nothing new', async (t) => {
    const start = Date.now() - 100_000 * 1000;
    const lines = Array.from({ length: 100_000 }, (_, i) =>
      JSON.stringify({
        id: `bf-${i}`,
        customer: 'acme',
        type: 'api_call',
        timestamp: new Date(start + i * 1000).toISOString(),
        properties: { region: 'eu' },
      }),
    );
    writeFileSync(ndjson(), `${lines.join('\n')}\n`);
    const before = await events();

    const first = await backfill(ndjson());
    t.diagnostic(`100,000 events in ${first.elapsed_ms} ms: ${first.events_per_second} events/s`);
    assert.deepEqual([first.accepted, first.duplicate, first.conflict, first.rejected, first.failed], [100_000, 0, 0, 0, 0]);
    assert.equal((await events()) - before, first.accepted);
    assert.equal(readFileSync(`${ndjson()}.checkpoint`, 'utf8').trim(), '100000');
    assert.equal(readFileSync(`${ndjson()}.rejects.ndjson`, 'utf8'), '');

    const again = await backfill(ndjson());
    assert.deepEqual([again.accepted, again.duplicate, again.conflict, again.rejected], [0, 100_000, 0, 0]);
    assert.equal((await events()) - before, 100_000);
  });

  test('CSV: malformed lines, refused and conflicting events go to the rejects file with reasons; exit 1', async () => {
    const file = path.join(dir, 'events.csv');
    writeFileSync(
      file,
      [
        'id,customer,type,timestamp,region',
        'csv-1,acme,api_call,2026-01-10T00:00:00Z,eu',
        'csv-2,acme,api_call,,"eu, west"',
        'csv-3,acme,"api_call',
        'csv-4,acme,api_call',
        'csv-5,nobody,api_call,,eu',
        'csv-6,acme,api"call,,eu',
        'csv-7,acme,api_call,,"say ""hi"""',
        '',
        'bf-0,acme,api_call,2020-01-01T00:00:00Z,eu',
      ].join('\r\n'),
    );
    const before = await events();
    const run = await cli(['backfill', file, '--api-url', app.url, '--json'], { METERFLOW_API_KEY: writer });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /5 event\(s\) rejected, in conflict or not sent/);
    const summary = JSON.parse(run.stdout);
    assert.deepEqual([summary.accepted, summary.duplicate, summary.conflict, summary.rejected], [3, 0, 1, 4]);
    assert.equal((await events()) - before, 3);
    const stored = await db.pool.query(
      `select event_id, properties->>'region' as region from usage_events where event_id like 'csv-%' order by event_id`,
    );
    assert.deepEqual(stored.rows, [
      { event_id: 'csv-1', region: 'eu' },
      { event_id: 'csv-2', region: 'eu, west' },
      { event_id: 'csv-7', region: 'say "hi"' },
    ]);

    const rejects = readFileSync(`${file}.rejects.ndjson`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      rejects.map((r) => [r.line, r.status, r.reason]).sort((a, b) => a[0] - b[0]),
      [
        [4, 'rejected', 'malformed_line'],
        [5, 'rejected', 'malformed_line'],
        [6, 'rejected', 'unknown_customer'],
        [7, 'rejected', 'malformed_line'],
        [10, 'conflict', 'id_reused'],
      ],
    );
    assert.match(rejects.find((r) => r.line === 4).detail, /invalid CSV: unterminated quoted field/);
    assert.match(rejects.find((r) => r.line === 5).detail, /3 fields where the header has 5/);
    assert.equal(rejects.find((r) => r.line === 7).raw, 'csv-6,acme,api"call,,eu');
    assert.deepEqual(rejects.find((r) => r.line === 6).event, {
      id: 'csv-5',
      customer: 'nobody',
      type: 'api_call',
      properties: { region: 'eu' },
    });
  });

  test('--resume skips the lines an earlier run had answered', async () => {
    const file = path.join(dir, 'resume.jsonl');
    const line = (i: number) => `${JSON.stringify({ id: `rs-${i}`, customer: 'acme', type: 'api_call' })}\n`;
    writeFileSync(file, Array.from({ length: 30 }, (_, i) => line(i)).join(''));
    const first = await backfill(file, '--batch-size', '7');
    assert.deepEqual([first.accepted, first.skipped_lines, first.checkpoint.lines], [30, 0, 30]);

    appendFileSync(file, `not json\n${Array.from({ length: 20 }, (_, i) => line(30 + i)).join('')}`);
    const run = await cli(['backfill', file, '--api-url', app.url, '--batch-size', '7', '--resume', '--json'], {
      METERFLOW_API_KEY: writer,
    });
    assert.equal(run.code, 1, 'the malformed line is rejected');
    const resumed = JSON.parse(run.stdout);
    assert.deepEqual(
      [resumed.skipped_lines, resumed.accepted, resumed.duplicate, resumed.rejected, resumed.checkpoint.lines],
      [30, 20, 0, 1, 51],
    );
    assert.equal(readFileSync(`${file}.checkpoint`, 'utf8').trim(), '51');
    assert.equal(await count(`usage_events where event_id like 'rs-%'`), 50);
    assert.equal(readFileSync(`${file}.rejects.ndjson`, 'utf8').trim().split('\n').length, 1);

    const nothingLeft = await backfill(file, '--resume');
    assert.deepEqual([nothingLeft.skipped_lines, nothingLeft.accepted, nothingLeft.duplicate], [51, 0, 0]);
  });

  test('cannot run (exit 2) without a key, a key that may write events, a reachable API or a known format', async () => {
    const file = ndjson();
    const reader = (await app.issue({ scopes: ['usage:read'] })).secret;
    const [noKey, readOnly, down, unknown] = await Promise.all([
      cli(['backfill', file, '--api-url', app.url], { METERFLOW_API_KEY: '' }),
      cli(['backfill', file, '--api-url', app.url, '--key', reader]),
      cli(['backfill', file, '--api-url', `http://127.0.0.1:${await freePort()}`, '--key', writer]),
      cli(['backfill', path.join(dir, 'events.txt'), '--key', writer]),
    ]);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /pass --key or set METERFLOW_API_KEY/);
    assert.equal(readOnly.code, 2);
    assert.match(readOnly.stderr, /lacks the events:write scope/);
    assert.equal(down.code, 2);
    assert.match(down.stderr, /cannot reach the API .*npm start/);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /--format/);
  });
});

describe('subscriptions, with their billing workflows on a Temporal dev server', () => {
  let temporal: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  let simulator: Awaited<ReturnType<typeof startProviderSimulator>>;
  const taskQueue = 'cli-test';
  const env = () => ({ TEMPORAL_ADDRESS: temporal.address, TEMPORAL_TASK_QUEUE: taskQueue });
  const state = () => temporal.client.workflow.getHandle(workflowIdFor('acme')).query(billingState);

  before(async () => {
    let bundle;
    [temporal, bundle] = await Promise.all([
      localEnvironment(),
      bundleWorkflowCode({ workflowsPath }),
      (async () => (simulator = await startProviderSimulator({ port: await freePort() })))(),
    ]);
    const provider = createHttpPaymentProvider({ baseUrl: simulator.url, timeoutMs: 1000 });
    worker = await Worker.create({
      connection: temporal.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities: realActivities(db.pool, provider),
    });
    running = worker.run();
  });
  after(async () => {
    worker?.shutdown();
    await running;
    await temporal?.teardown();
    await simulator?.close();
  });

  test('create starts the workflow, change-plan moves it, cancel tells it; each repeatable, audited as cli', async () => {
    const created = await json(['subscriptions', 'create', '--customer', 'acme', '--plan', 'basic'], 0, env());
    assert.equal(created.created, true);
    // Queries are answered once the workflow's first task has completed.
    assert.equal((await waitFor(state, { description: 'the workflow answers queries' })).planCode, 'basic');
    assert.equal((await json(['subscriptions', 'create', '--customer', 'acme', '--plan', 'basic'], 0, env())).id, created.id);
    const other = await cli(['subscriptions', 'create', '--customer', 'acme', '--plan', 'pro'], env());
    assert.equal(other.code, 1);
    assert.match(other.stderr, /already has an active subscription/);

    const changed = await json(['subscriptions', 'change-plan', created.id, '--plan', 'pro'], 0, env());
    assert.equal(changed.plan, 'pro');
    assert.equal((await state()).planCode, 'pro');
    assert.deepEqual((await json(['subscriptions', 'show', created.id])).plan, 'pro');

    const thresholds = ['subscriptions', 'spend-thresholds', created.id, '--spend-threshold', '500.00', '--spend-every', '250'];
    assert.deepEqual((await json(thresholds, 0, env())).spend_thresholds, { amounts: ['500.00'], every: '250' });
    assert.deepEqual((await json(thresholds, 0, env())).spend_thresholds, { amounts: ['500.00'], every: '250' });
    const bad = await cli(['subscriptions', 'spend-thresholds', created.id, '--spend-every', '0'], env());
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /every: must be greater than 0/);

    const canceled = await json(['subscriptions', 'cancel', created.id], 0, env());
    assert.equal(canceled.status, 'canceled');
    await waitFor(state, { description: 'the workflow learns of the cancellation', until: (s) => s.canceled });
    assert.equal((await json(['subscriptions', 'cancel', created.id], 0, env())).status, 'canceled');
    const refused = await cli(['subscriptions', 'change-plan', created.id, '--plan', 'basic'], env());
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is canceled/);

    const { rows } = await db.pool.query(`select action, actor from audit_log where subject_id = $1 order by id`, [created.id]);
    assert.deepEqual(rows, [
      { action: 'subscription.created', actor: 'cli' },
      { action: 'subscription.plan_changed', actor: 'cli' },
      { action: 'subscription.spend_thresholds_changed', actor: 'cli' },
      { action: 'subscription.canceled', actor: 'cli' },
    ]);
  });

  test('change-plan --effective: period_end schedules even an upgrade, immediately applies even a downgrade; the workflow follows', async () => {
    await json(['customers', 'create', 'umbrella', '--name', 'Umbrella', '--currency', 'USD']);
    const created = await json(['subscriptions', 'create', '--customer', 'umbrella', '--plan', 'basic'], 0, env());
    const workflow = temporal.client.workflow.getHandle(workflowIdFor('umbrella'));
    const planOf = async () => (await workflow.query(billingState)).planCode;
    assert.equal(await waitFor(planOf, { description: 'the workflow answers queries' }), 'basic');

    const later = await json(['subscriptions', 'change-plan', created.id, '--plan', 'pro', '--effective', 'period_end'], 0, env());
    assert.equal(later.plan, 'basic');
    assert.deepEqual(later.pending_change, { plan: 'pro', effective_at: later.current_period.end });
    assert.equal(await planOf(), 'basic', 'nothing reaches the workflow before the period end');

    const now = await json(['subscriptions', 'change-plan', created.id, '--plan', 'pro', '--effective', 'immediately'], 0, env());
    assert.equal(now.plan, 'pro');
    assert.equal(now.pending_change, null);
    assert.equal(await planOf(), 'pro');
    // basic is the downgrade, by default at the period end: asked at once, it is.
    const down = await json(['subscriptions', 'change-plan', created.id, '--plan', 'basic', '--effective', 'immediately'], 0, env());
    assert.equal(down.plan, 'basic');
    assert.equal(down.pending_change, null);
    assert.equal(await planOf(), 'basic');

    const bad = await cli(['subscriptions', 'change-plan', created.id, '--plan', 'pro', '--effective', 'tomorrow'], env());
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--effective/);
    const { rows } = await db.pool.query(`select action, actor from audit_log where subject_id = $1 order by id`, [created.id]);
    assert.deepEqual(
      rows.map((r) => r.action),
      [
        'subscription.created',
        'subscription.plan_change_scheduled',
        'subscription.plan_change_dropped',
        'subscription.plan_changed',
        'subscription.plan_changed',
      ],
    );
  });

  test('--billing-anchor: periods on the 1st, the first one from the start; not an RFC 3339 instant is exit 2', async () => {
    await json(['customers', 'create', 'hooli', '--name', 'Hooli', '--currency', 'USD']);
    const bad = await cli(['subscriptions', 'create', '--customer', 'hooli', '--plan', 'basic', '--billing-anchor', '2026-01-01'], env());
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /billing_anchor/);
    assert.equal(await count(`subscriptions s join customers c on c.id = s.customer_id where c.external_id = 'hooli'`), 0);

    const start = new Date();
    const nextFirst = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1)).toISOString();
    const args = ['subscriptions', 'create', '--customer', 'hooli', '--plan', 'basic', '--start', start.toISOString()];
    const created = await json([...args, '--billing-anchor', '2026-01-01T00:00:00Z'], 0, env());
    assert.equal(created.billing_anchor, '2026-01-01T00:00:00.000Z');
    assert.deepEqual(created.current_period, { start: start.toISOString(), end: nextFirst });
    const handle = temporal.client.workflow.getHandle(workflowIdFor('hooli'));
    const first = await waitFor(() => handle.query(billingState), { description: 'the workflow answers queries' });
    assert.deepEqual(first.period, { start: start.toISOString(), end: nextFirst });
  });

  test('with Temporal unreachable the subscription is saved and the CLI says to retry (exit 2)', async () => {
    const down = { TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}` };
    const run = await cli(['subscriptions', 'create', '--customer', 'globex', '--plan', 'basic', '--json'], down);
    assert.equal(run.code, 2);
    assert.equal(run.stdout, '');
    assert.match(
      run.stderr,
      /subscription [0-9a-f-]{36} is saved, but its billing workflow could not be started: cannot reach Temporal .*retry the same command/,
    );
    assert.equal(
      await count(`subscriptions s join customers c on c.id = s.customer_id where c.external_id = 'globex' and s.status = 'active'`),
      1,
    );

    const retried = await json(['subscriptions', 'create', '--customer', 'globex', '--plan', 'basic'], 0, env());
    assert.equal(retried.created, false);
    const handle = temporal.client.workflow.getHandle(workflowIdFor('globex'));
    assert.equal(
      (await waitFor(() => handle.query(billingState), { description: 'the workflow answers queries' })).subscriptionId,
      retried.id,
    );
  });

  test('spend-cap sets and removes the cap, and the billing workflow prices the open period against it', async () => {
    const { id } = await json(['subscriptions', 'create', '--customer', 'globex', '--plan', 'basic'], 0, env());
    const handle = temporal.client.workflow.getHandle(workflowIdFor('globex'));
    const set = await json(['subscriptions', 'spend-cap', id, '--amount', '12.50', '--grace', 'PT1H'], 0, env());
    assert.deepEqual(set.spend_cap, { amount: '12.50', grace_period: 'PT1H' });
    const priced = await handle.query(billingState);
    assert.equal(priced.spend?.priced.available, '12.5');
    assert.equal(priced.spend?.limit.status, 'ok');
    // The same command again is a retry: no second change, no second audit entry.
    assert.deepEqual((await json(['subscriptions', 'spend-cap', id, '--amount', '12.50', '--grace', 'PT1H'], 0, env())).spend_cap, {
      amount: '12.50',
      grace_period: 'PT1H',
    });

    const tooPrecise = await cli(['subscriptions', 'spend-cap', id, '--amount', '1.234'], env());
    assert.equal(tooPrecise.code, 1);
    assert.match(tooPrecise.stderr, /at most 2 decimal places/);
    const neither = await cli(['subscriptions', 'spend-cap', id], env());
    assert.equal(neither.code, 2);
    assert.match(neither.stderr, /either --amount or --remove/);

    const removed = await json(['subscriptions', 'spend-cap', id, '--remove'], 0, env());
    assert.equal(removed.spend_cap, null);
    assert.equal((await handle.query(billingState)).spend?.priced.available, null);
    const { rows } = await db.pool.query(
      `select actor, details from audit_log where action = 'subscription.spend_cap_changed' order by id`,
    );
    assert.deepEqual(rows, [
      { actor: 'cli', details: { from: null, to: { amount: '12.50', grace_period: 'PT1H' } } },
      { actor: 'cli', details: { from: { amount: '12.50', grace_period: 'PT1H' }, to: null } },
    ]);
  });
});
