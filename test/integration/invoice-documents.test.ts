import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { defaultActivityInfo, MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { PDFParse } from 'pdf-parse';
import { createDraftInvoice } from '../../src/activities/draft-invoice';
import { createFinalizeInvoice } from '../../src/activities/finalize-invoice';
import type { Clock } from '../../src/clock';
import { createCustomer } from '../../src/customers/store';
import { planSchema } from '../../src/domain/plan';
import { renderInvoiceDocument } from '../../src/invoices/documents/render';
import type { InvoiceIssuer } from '../../src/invoices/issuer';
import { InvoiceService } from '../../src/invoices/service';
import { getInvoice } from '../../src/invoices/store';
import { createMeter } from '../../src/meters/store';
import { createPlan } from '../../src/plans/store';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import { startProviderSimulator, type ProviderSimulator } from '../../src/provider/simulator';
import { changePlan, createSubscription } from '../../src/subscriptions/store';
import { freePort } from '../../scripts/free-port';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startKeysApp, type KeysTestApp } from '../support/keys-app';
import { localEnvironment } from '../support/temporal';
import { storeEvents } from '../support/usage-events';

/*
 * Invoice documents and invoice numbers on a real Postgres, through the API as production wires
 * it: numbers gapless under concurrent and retried finalizations, the HTML and PDF documents
 * showing the invoice's figures (the PDF read back with a PDF parser), identical bytes on every
 * render, content negotiation, and a restricted key seeing only its customer's documents.
 */
let db: TestDatabase;
let app: KeysTestApp;
let admin: string;
let acmeReader: string;
const ids = {} as { acme: string; globex: string; calls: string; acmeSubscription: string; globexSubscription: string };

/** Finalization happens "now" by this clock: its year names the number series. */
const clock: Clock = { now: () => new Date('2026-02-01T00:10:00Z') };
const northwind: InvoiceIssuer = {
  seller: {
    name: 'Northwind Metering GmbH',
    address: ['Hauptstraße 1', '10115 Berlin', 'Germany'],
    taxId: 'DE123456789',
    email: 'billing@northwind.example',
  },
  numberPrefix: 'NW',
};
const activity = new MockActivityEnvironment({ ...defaultActivityInfo, workflowExecution: { workflowId: 'billing/acme', runId: 'run-1' } });

const month = (year: number, m: number) => ({ start: new Date(Date.UTC(year, m - 1, 1)), end: new Date(Date.UTC(year, m, 1)) });
const draft = async (customer: 'acme' | 'globex', period: { start: Date; end: Date }): Promise<string> => {
  const drafted = (await activity.run(createDraftInvoice({ pool: db.pool, clock, lookbackInvoices: 0 }), {
    subscriptionId: customer === 'acme' ? ids.acmeSubscription : ids.globexSubscription,
    customerId: ids[customer],
    planCode: 'metered',
    periodStart: period.start.toISOString(),
    periodEnd: period.end.toISOString(),
  })) as { invoiceId: string };
  return drafted.invoiceId;
};
const finalize = (invoiceId: string, issuer = northwind) =>
  activity.run(createFinalizeInvoice({ pool: db.pool, clock, issuer }), { invoiceId });
const numberOf = async (invoiceId: string) => (await getInvoice(db.pool, invoiceId))!.number;
const lastNumber = async (series: string) =>
  (await db.pool.query<{ last_number: number }>('select last_number from invoice_number_series where series = $1', [series])).rows[0]
    ?.last_number;

const get = (path: string, key = admin, accept?: string) =>
  fetch(`${app.url}${path}`, { headers: { authorization: `Bearer ${key}`, ...(accept ? { accept } : {}) } });
const bytes = async (res: Response) => Buffer.from(await res.arrayBuffer());
const body = async (res: Response): Promise<any> => res.json();
const pdfText = async (pdf: Buffer) => {
  const parser = new PDFParse({ data: new Uint8Array(pdf) });
  try {
    return (await parser.getText()).text;
  } finally {
    await parser.destroy();
  }
};

before(async () => {
  db = await createTestDatabase();
  app = await startKeysApp(db);
  const acme = await createCustomer(db.pool, { external_id: 'acme', name: 'Acme & Söhne <Berlin>', currency: 'USD' }, 'system');
  const globex = await createCustomer(db.pool, { external_id: 'globex', name: 'Globex', currency: 'USD' }, 'system');
  const calls = await createMeter(
    db.pool,
    { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} },
    'system',
  );
  const plan = planSchema({ knownMeters: new Set(['api_calls']) }).parse({
    id: 'metered',
    name: 'Metered',
    currency: 'USD',
    base_fee: '1200.00',
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
  await createPlan(db.pool, plan, 'system');
  const anchor = new Date('2026-01-01T00:00:00Z');
  const acmeSub = await createSubscription(db.pool, { customerId: acme.customer.id, planCode: 'metered', anchor, actor: 'system' });
  const globexSub = await createSubscription(db.pool, { customerId: globex.customer.id, planCode: 'metered', anchor, actor: 'system' });
  assert.ok(acmeSub.created && globexSub.created);
  Object.assign(ids, {
    acme: acme.customer.id,
    globex: globex.customer.id,
    calls: calls.meter.id,
    acmeSubscription: acmeSub.subscription.id,
    globexSubscription: globexSub.subscription.id,
  });
  admin = (await app.issue({ scopes: ['billing:read', 'billing:admin'] })).secret;
  acmeReader = (await app.issue({ scopes: ['billing:read'], customer: 'acme' })).secret;
});
after(async () => {
  await app?.close();
  await db?.drop();
});

describe('invoice numbers', () => {
  let january: string;

  test('a draft has no number; finalizing gives the first of the series, and a retried finalize keeps it', async () => {
    await storeEvents(db.pool, { customerId: ids.acme, meterId: ids.calls, from: month(2026, 1).start, count: 1501 });
    january = await draft('acme', month(2026, 1));
    assert.equal((await body(await get(`/v1/invoices/${january}`))).number, null);

    await finalize(january);
    await finalize(january);
    assert.equal(await numberOf(january), 'NW-2026-000001');
    assert.equal(await lastNumber('NW-2026'), 1, 'the retry took no second number');
    const json = await body(await get(`/v1/invoices/${january}`));
    assert.deepEqual([json.number, json.status], ['NW-2026-000001', 'finalized']);
  });

  test('a finalize that fails after taking a number gives it back: the next invoice has no gap', async () => {
    const failing = await draft('acme', month(2026, 2));
    // The finalizing transaction fails after the number was taken (as a crash or a lost connection would).
    await db.pool.query(`create function fail_finalize() returns trigger language plpgsql as $$
      begin raise exception 'simulated failure while finalizing %', new.id; end $$`);
    await db.pool.query(
      `create trigger fail_finalize before update on invoices for each row when (new.id = '${failing}' and new.status = 'finalized')
       execute function fail_finalize()`,
    );
    await assert.rejects(finalize(failing), /simulated failure/);
    assert.equal(await numberOf(failing), null);
    assert.equal(await lastNumber('NW-2026'), 1);
    await db.pool.query('drop trigger fail_finalize on invoices; drop function fail_finalize()');

    await finalize(failing);
    assert.equal(await numberOf(failing), 'NW-2026-000002');
  });

  test('concurrent finalizations, each run twice, number the invoices 1…n without gap or repeat', async () => {
    const drafts: string[] = [];
    for (let m = 3; m <= 14; m++) drafts.push(await draft('acme', month(2026, m)));
    for (let m = 1; m <= 12; m++) drafts.push(await draft('globex', month(2026, m)));
    const service = new InvoiceService(db.pool, clock);
    const runs = drafts.flatMap((id) => [service.finalize(id, 'system', northwind), service.finalize(id, 'system', northwind)]);
    const results = await Promise.all(runs);
    assert.ok(results.every((r) => r.ok));
    const numbers = await Promise.all(drafts.map(numberOf));
    const expected = Array.from({ length: drafts.length }, (_, i) => `NW-2026-${String(i + 3).padStart(6, '0')}`);
    assert.deepEqual([...numbers].sort(), expected);
    assert.equal(await lastNumber('NW-2026'), drafts.length + 2);
    assert.equal(
      Number((await db.pool.query<{ n: string }>(`select count(*) as n from audit_log where action = 'invoice.finalized'`)).rows[0]!.n),
      drafts.length + 2,
      'one finalization audited per invoice',
    );
  });

  test('another prefix is another series; a number and its snapshots never change once given', async () => {
    const other = await draft('acme', month(2027, 3));
    await finalize(other, { ...northwind, numberPrefix: 'NW-EU' });
    assert.equal(await numberOf(other), 'NW-EU-2026-000001');
    await assert.rejects(db.pool.query(`update invoices set number = 'NW-2026-999999' where id = $1`, [january]), /immutable/);
    await assert.rejects(db.pool.query(`update invoices set seller = '{"name": "Someone else"}' where id = $1`, [january]), /immutable/);
  });
});

describe('invoice documents', () => {
  let invoice: string;
  let globexInvoice: string;
  let draftInvoice: string;

  before(async () => {
    invoice = (await db.pool.query<{ id: string }>(`select id from invoices where number = 'NW-2026-000001'`)).rows[0]!.id;
    globexInvoice = (
      await db.pool.query<{ id: string }>(`select id from invoices where customer_id = $1 and number is not null`, [ids.globex])
    ).rows[0]!.id;
    draftInvoice = await draft('acme', month(2028, 1));
  });

  /** What both documents must show for January: 1200.00 base fee + (1000 × 0.002 + 501 × 0.001 = 2.501 → 2.50). */
  const figures = [
    'Invoice NW-2026-000001',
    'Northwind Metering GmbH',
    'Hauptstraße 1',
    '10115 Berlin',
    'Tax ID: DE123456789',
    'billing@northwind.example',
    'Customer ID: acme',
    '2026-01-01 – 2026-01-31',
    'Issued',
    '2026-02-01',
    'USD 1,200.00',
    'USD 2.50',
    '1,501',
    '0.501',
    '0.002',
    'USD 1,202.50',
    'Amount due',
    'Awaiting payment',
  ];

  test('HTML: the invoice as one printable page with its figures, the customer name escaped', async () => {
    const res = await get(`/v1/invoices/${invoice}.html`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(res.headers.get('content-disposition')!, /filename="NW-2026-000001.html"/);
    const html = await res.text();
    for (const figure of figures) assert.ok(html.includes(figure), `the HTML shows ${figure}`);
    assert.ok(html.includes('Acme &amp; Söhne &lt;Berlin&gt;'));
    assert.ok(!html.includes('<Berlin>'));
    assert.doesNotMatch(html, /https?:\/\//, 'nothing is fetched from elsewhere');
    const totals = html.slice(html.indexOf('class="totals"'));
    assert.match(totals, /Net<\/th><td class="num">USD 1,202.50/);
    assert.match(totals, /Tax<\/th><td class="num">USD 0.00/);
    assert.match(totals, /Amount due<\/th><td class="num">USD 1,202.50/);
  });

  test('PDF: the same figures, read back with a PDF parser', async () => {
    const res = await get(`/v1/invoices/${invoice}.pdf`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/pdf');
    const pdf = await bytes(res);
    assert.equal(pdf.subarray(0, 5).toString(), '%PDF-');
    const text = await pdfText(pdf);
    for (const figure of figures) assert.ok(text.includes(figure), `the PDF shows ${figure}:\n${text}`);
    assert.ok(text.includes('Acme & Söhne <Berlin>'));
    assert.match(text, /Net\s+USD 1,202.50/);
    assert.match(text, /Amount due\s+USD 1,202.50/);
  });

  test('the same invoice renders the same bytes, every time and by every route', async () => {
    const stored = (await getInvoice(db.pool, invoice))!;
    for (const format of ['pdf', 'html'] as const) {
      const [a, b] = [await renderInvoiceDocument(stored, format), await renderInvoiceDocument(stored, format)];
      assert.ok(a.body.equals(b.body), `two ${format} renders are identical`);
      const accept = format === 'pdf' ? 'application/pdf' : 'text/html';
      const [byExtension, negotiated] = await Promise.all([
        get(`/v1/invoices/${invoice}.${format}`),
        get(`/v1/invoices/${invoice}`, admin, accept),
      ]);
      assert.ok((await bytes(byExtension)).equals(a.body), `${format} by extension`);
      assert.ok((await bytes(negotiated)).equals(a.body), `${format} by Accept`);
    }
    assert.match((await renderInvoiceDocument(stored, 'pdf')).body.toString('latin1'), /\(D:20260201001000Z\)/);
  });

  test('content negotiation: JSON by default, HTML for a browser, the preferred document, 406 for none of them', async () => {
    const plain = await get(`/v1/invoices/${invoice}`);
    assert.equal(plain.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.match(plain.headers.get('vary')!, /Accept/);
    assert.equal((await body(plain)).number, 'NW-2026-000001');
    assert.match((await get(`/v1/invoices/${invoice}`, admin, '*/*')).headers.get('content-type')!, /^application\/json/);
    const browser = await get(`/v1/invoices/${invoice}`, admin, 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8');
    assert.equal(browser.headers.get('content-type'), 'text/html; charset=utf-8');
    const preferred = await get(`/v1/invoices/${invoice}`, admin, 'text/html;q=0.5, application/pdf');
    assert.equal(preferred.headers.get('content-type'), 'application/pdf');

    const refused = await get(`/v1/invoices/${invoice}`, admin, 'image/png');
    assert.equal(refused.status, 406);
    assert.equal(refused.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    const problem = await body(refused);
    assert.equal(problem.type, '/problems/not_acceptable');
    assert.deepEqual(problem.acceptable, ['application/json', 'text/html', 'application/pdf']);
  });

  test('a draft has no document (409); an unknown id is 404; a malformed one 400', async () => {
    for (const path of [`/v1/invoices/${draftInvoice}.pdf`, `/v1/invoices/${draftInvoice}.html`]) {
      const res = await get(path);
      assert.equal(res.status, 409, path);
      assert.equal((await body(res)).reason, 'invoice_not_issued');
    }
    const negotiated = await get(`/v1/invoices/${draftInvoice}`, admin, 'application/pdf');
    assert.equal(negotiated.status, 409);
    assert.equal((await get(`/v1/invoices/${randomUUID()}.pdf`)).status, 404);
    assert.equal((await get('/v1/invoices/not-a-uuid.pdf')).status, 400);
  });

  test("a key restricted to acme gets acme's documents; globex's are absent, exactly like an unknown invoice", async () => {
    assert.equal((await get(`/v1/invoices/${invoice}.pdf`, acmeReader)).status, 200);
    assert.equal((await get(`/v1/invoices/${invoice}`, acmeReader, 'text/html')).status, 200);
    for (const suffix of ['.pdf', '.html', '']) {
      const other = await get(`/v1/invoices/${globexInvoice}${suffix}`, acmeReader, 'application/pdf');
      const absent = await get(`/v1/invoices/${randomUUID()}${suffix}`, acmeReader, 'application/pdf');
      assert.equal(other.status, 404, suffix);
      const [o, a] = [await body(other), await body(absent)];
      assert.deepEqual([o.type, o.reason], [a.type, a.reason], suffix);
    }
    assert.equal((await get(`/v1/invoices/${globexInvoice}.pdf`)).status, 200, 'globex has the document');
  });

  test('payment status follows the invoice: paid owes nothing; a void invoice is marked VOID', async () => {
    const paid = (await db.pool.query<{ id: string }>(`select id from invoices where number = 'NW-2026-000002'`)).rows[0]!.id;
    await db.pool.query(`update invoices set status = 'paid', paid_at = '2026-02-03T09:00:00Z' where id = $1`, [paid]);
    const paidText = await pdfText(await bytes(await get(`/v1/invoices/${paid}.pdf`)));
    assert.match(paidText, /Payment status: Paid on 2026-02-03/);
    assert.match(paidText, /Amount due\s+USD 0.00/);

    const voided = await new InvoiceService(db.pool, clock).void('system', invoice, 'billed the wrong entity');
    assert.ok(voided.ok);
    const html = await (await get(`/v1/invoices/${invoice}.html`)).text();
    assert.match(html, /VOID since 2026-02-01: billed the wrong entity/);
    assert.match(html, /Amount due<\/th><td class="num">USD 0.00/);
    const text = await pdfText(await bytes(await get(`/v1/invoices/${invoice}.pdf`)));
    assert.match(text, /VOID since 2026-02-01: billed the wrong entity/);
    assert.ok(text.includes('NW-2026-000001'), 'a void invoice keeps its number');
  });
});

describe('an invoice with a discount, a tax, credits applied and two plan segments, rendered', () => {
  let env: TestWorkflowEnvironment;
  let sim: ProviderSimulator;
  let billing: KeysTestApp;
  let invoiceId: string;
  const march = month(2026, 3);

  before(async () => {
    // Credits as production mounts them: on an API with Temporal (expiry timers) and a payment provider.
    env = await localEnvironment();
    sim = await startProviderSimulator({ port: await freePort() });
    billing = await startKeysApp(db, {
      billing: { client: env.client, taskQueue: 'documents-test', allowedLatenessMs: 0, dunning: [], usageReportIntervalMs: 300_000 },
      provider: createHttpPaymentProvider({ baseUrl: sim.url, timeoutMs: 5000 }),
    });
    const key = (await billing.issue({ scopes: ['billing:read', 'billing:admin'] })).secret;
    const post = async (path: string, payload: unknown) => {
      const res = await billing.call('POST', path, key, payload);
      assert.ok(res.status < 300, `${path}: ${res.status} ${await res.text()}`);
    };
    const { customer } = await createCustomer(db.pool, { external_id: 'initech', name: 'Initech', currency: 'USD' }, 'system');
    const plan = (id: string, baseFee: string, unitPrice: string) =>
      planSchema({ knownMeters: new Set(['api_calls']) }).parse({
        id,
        name: id,
        currency: 'USD',
        base_fee: baseFee,
        charges: [{ meter: 'api_calls', model: 'per_unit', unit_price: unitPrice }],
        interval: { kind: 'calendar_month' },
      });
    await createPlan(db.pool, plan('starter', '10.00', '0.01'), 'system');
    await createPlan(db.pool, plan('growth', '40.00', '0.008'), 'system');
    const sub = await createSubscription(db.pool, { customerId: customer.id, planCode: 'starter', anchor: march.start, actor: 'system' });
    assert.ok(sub.created);
    await storeEvents(db.pool, { customerId: customer.id, meterId: ids.calls, from: new Date('2026-03-02T00:00:00Z'), count: 500 });
    const upgrade = await changePlan(db.pool, sub.subscription.id, 'growth', 'system', {
      scheduled: false,
      at: new Date('2026-03-11T00:00:00Z'),
    });
    assert.equal(upgrade.outcome, 'changed');
    await storeEvents(db.pool, { customerId: customer.id, meterId: ids.calls, from: new Date('2026-03-20T00:00:00Z'), count: 300 });
    await post('/v1/coupons', {
      code: 'WELCOME5',
      name: 'Welcome, 5 off',
      discount: { type: 'fixed_amount', amount_off: '5.00', currency: 'USD' },
      duration: { kind: 'once' },
    });
    await post('/v1/customers/initech/coupons', { coupon: 'WELCOME5' });
    await post('/v1/customers/initech/tax-rates', { code: 'vat', name: 'VAT', percentage: '20' });
    await post('/v1/customers/initech/credits', { reference: 'goodwill', source: 'promotional', currency: 'USD', amount: '8.00' });
    const drafted = (await activity.run(createDraftInvoice({ pool: db.pool, clock, lookbackInvoices: 0 }), {
      subscriptionId: sub.subscription.id,
      customerId: customer.id,
      planCode: 'growth',
      periodStart: march.start.toISOString(),
      periodEnd: march.end.toISOString(),
    })) as { invoiceId: string };
    invoiceId = drafted.invoiceId;
    await finalize(invoiceId);
  });
  after(async () => {
    await billing?.close();
    await sim?.close();
    await env?.teardown();
  });

  const unescape = (html: string) =>
    html
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"')
      .replace(/&#39;/g, "'")
      .replace(/&amp;/g, '&');
  /** "USD 1,234.50" for "1234.50": the documents' money format, by its own rule (grouped digits, the currency first). */
  const usd = (amount: string) => `USD ${amount.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}`;

  test('the HTML shows every line of the JSON invoice with its amount, under its segment or section, and the same totals', async () => {
    const json = await body(await get(`/v1/invoices/${invoiceId}`));
    const types = json.lines.map((l: any) => l.type);
    for (const type of ['base_fee', 'usage', 'discount', 'tax', 'credit']) assert.ok(types.includes(type), `a ${type} line: ${types}`);
    const segments = [...new Set(json.lines.filter((l: any) => l.segment).map((l: any) => l.segment.plan))];
    assert.deepEqual(segments, ['starter', 'growth'], 'two plan segments');
    const credit = json.lines.find((l: any) => l.type === 'credit');
    assert.equal(credit.amount, '-8.00', 'the whole grant is applied');

    const res = await get(`/v1/invoices/${invoiceId}.html`);
    assert.equal(res.status, 200);
    const html = await res.text();
    const rows = [
      ...html.matchAll(/<tr class="line"><td>(.*?)(?:<br>.*?)?<\/td><td class="num">.*?<\/td><td class="num">(.*?)<\/td><\/tr>/g),
    ].map((m) => [unescape(m[1]!), unescape(m[2]!)]);
    const sorted = (pairs: string[][]) => [...pairs].sort((a, b) => a.join('|').localeCompare(b.join('|')));
    assert.deepEqual(
      sorted(rows),
      sorted(json.lines.map((l: any) => [l.description, usd(l.amount)])),
      'one row per line, each with the JSON amount',
    );
    for (const s of json.lines.filter((l: any) => l.segment).map((l: any) => l.segment))
      assert.ok(html.includes(`Plan ${s.plan}, `), `a section for the segment on ${s.plan}`);
    for (const title of ['Discounts', 'Taxes', 'Credits applied']) assert.ok(html.includes(`colspan="3">${title}</th>`), title);
    const totals = html.slice(html.indexOf('class="totals"'));
    assert.ok(totals.includes(`Net</th><td class="num">${usd(json.net)}<`), `net ${json.net}`);
    assert.ok(totals.includes(`Tax</th><td class="num">${usd(json.tax)}<`), `tax ${json.tax}`);
    assert.ok(totals.includes(`Amount due</th><td class="num">${usd(json.total)}<`), `amount due ${json.total}`);
  });

  test('the PDF renders the same lines and amount due, read back with a PDF parser', async () => {
    const json = await body(await get(`/v1/invoices/${invoiceId}`));
    const pdf = await bytes(await get(`/v1/invoices/${invoiceId}.pdf`));
    assert.equal(pdf.subarray(0, 5).toString(), '%PDF-');
    const text = await pdfText(pdf);
    // A long description wraps in the PDF: compared without whitespace.
    const flat = (t: string) => t.replace(/\s+/g, '');
    for (const line of json.lines) {
      assert.ok(flat(text).includes(flat(line.description)), `the PDF shows "${line.description}":\n${text}`);
      assert.ok(text.includes(usd(line.amount)), `the PDF shows ${usd(line.amount)}`);
    }
    assert.ok(text.includes(json.number));
    assert.match(text, new RegExp(`Amount due\\s+${usd(json.total)}`));
  });
});
