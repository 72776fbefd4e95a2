import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { PDFParse } from 'pdf-parse';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createCustomer } from '../../src/customers/store';
import { planSchema } from '../../src/domain/plan';
import { saveBlockDecision, saveQuotaState } from '../../src/entitlements/quota-state-store';
import { InvoiceService } from '../../src/invoices/service';
import { defaultIssuer } from '../../src/invoices/issuer';
import { createMeter } from '../../src/meters/store';
import { createPlan } from '../../src/plans/store';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import { startProviderSimulator, type ProviderSimulator } from '../../src/provider/simulator';
import { changePlan, createSubscription } from '../../src/subscriptions/store';
import { freePort } from '../../scripts/free-port';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { ManualClock, startKeysApp, type KeysTestApp } from '../support/keys-app';
import { localEnvironment } from '../support/temporal';
import { storeEvents } from '../support/usage-events';
import { waitFor } from '../support/wait-for';

/*
 * The customer portal in a real browser: headless Chromium (Debian's package, provisioned by
 * scripts/provision-chromium.sh) driven by playwright-core opens the URL a portal session returns,
 * against the full API on a real Postgres. Every figure the page shows must be the API's own
 * answer; the session's token must reach nothing of another customer and nothing but the portal's
 * reads; an expired or revoked link must get a page that says so. Screenshots go to test-output/
 * (and to docs/screenshots/ with UPDATE_SCREENSHOTS=1).
 */

type Json = Record<string, any>;
const root = path.resolve(import.meta.dirname, '../..');
const outputDir = path.join(root, 'test-output');
const chromiumPath = process.env.CHROMIUM_PATH ?? path.join(root, '.tools/bin/chromium');

const utcMonth = (d: Date, offset: number) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + offset, 1));
// A fixed instant well into its month (the API's clock), so the current period has days of usage to chart and the screenshots are stable.
const started = new Date('2026-06-10T12:00:00Z');
const day = (n: number, hours = 0) => new Date(Date.UTC(2026, 5, n, hours));
// Two months back, issued; last month, closed and drafted for acme but not yet issued (finalization waits out the late events).
const previousPeriod = { start: utcMonth(started, -2), end: utcMonth(started, -1) };
const closedPeriod = { start: utcMonth(started, -1), end: utcMonth(started, 0) };
const currentPeriod = { start: utcMonth(started, 0), end: utcMonth(started, 1) };

let db: TestDatabase;
let env: TestWorkflowEnvironment;
let sim: ProviderSimulator;
let t: KeysTestApp;
let browser: Browser;
let admin: string;
const clock = new ManualClock(started);
const invoiceIds = {} as Record<'acme' | 'globex' | 'acmeDraft', string>;
const timings: string[] = [];

async function timed<T>(name: string, work: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await work();
  } finally {
    timings.push(`${name}: ${Math.round(performance.now() - t0)} ms`);
  }
}

async function call(key: string, method: string, route: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await t.call(method, route, key, body);
  return { status: res.status, body: (await res.json()) as Json };
}
async function ok(key: string, method: string, route: string, body?: unknown): Promise<Json> {
  const answer = await call(key, method, route, body);
  assert.ok(answer.status < 300, `${method} ${route}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body;
}

async function openSession(customer: string, expiresIn?: number): Promise<{ id: string; url: string; token: string; expiresAt: string }> {
  const session = await ok(admin, 'POST', '/v1/portal-sessions', { customer, ...(expiresIn ? { expires_in: expiresIn } : {}) });
  const url = new URL(session.url as string);
  return { id: session.id as string, url: url.toString(), token: url.hash.slice(1), expiresAt: session.expires_at as string };
}

/**
 * Opens the portal in a fresh page and waits until it has shown what it had to show. Every request
 * must succeed but the refusals listed in `refusals` (`<status> <path>`, e.g. an expired link's
 * 401), each of which the page shows as such.
 */
async function openPortal(url: string, refusals: string[] = []): Promise<{ page: Page; requests: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  const failed: string[] = [];
  page.on('requestfailed', (r) => failed.push(`${r.failure()?.errorText} ${new URL(r.url()).pathname}`));
  page.on('response', (r) => {
    if (r.status() >= 400) failed.push(`${r.status()} ${new URL(r.url()).pathname}`);
  });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // A Content-Security-Policy violation is a console error too. The browser logs each refused request as "Failed to load resource": those are held to `refusals` above.
  page.on('console', (m) => {
    if (m.type() === 'error' && !(refusals.length > 0 && m.text().startsWith('Failed to load resource'))) errors.push(m.text());
  });
  await page.goto(url);
  await page.waitForSelector('body:not([data-state="loading"])', { timeout: 30_000 });
  assert.deepEqual(failed, refusals, 'every request the page made succeeded but the refusals it expects');
  assert.deepEqual(errors, [], 'the page ran without script errors or policy violations');
  return { page, requests };
}

/**
 * The figures a page shows by their `data-figure` tag: an instant by its `datetime` (the API's
 * value), after checking that the text shown is that instant; anything else by its text.
 */
async function shownFigures(page: Page): Promise<Record<string, string>> {
  const marked = await page.$$eval('[data-figure]', (els) =>
    els.map((e) => [e.getAttribute('data-figure')!, e.textContent!, e.getAttribute('datetime')] as const),
  );
  for (const [key, text, iso] of marked)
    if (iso !== null) assert.equal(text, `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`, `${key} shows ${iso}`);
  return Object.fromEntries(marked.map(([key, text, iso]) => [key, iso ?? text]));
}

async function pdfText(pdf: Buffer): Promise<string> {
  const parser = new PDFParse({ data: new Uint8Array(pdf) });
  try {
    return (await parser.getText()).text;
  } finally {
    await parser.destroy();
  }
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(outputDir, `${name}.png`), fullPage: true });
  if (process.env.UPDATE_SCREENSHOTS === '1')
    await page.screenshot({ path: path.join(root, 'docs/screenshots', `${name}.png`), fullPage: true });
}

before(async () => {
  assert.ok(
    existsSync(chromiumPath),
    `No Chromium at ${chromiumPath}: run \`bash scripts/provision-chromium.sh\` (npm test does) or set CHROMIUM_PATH.`,
  );
  await mkdir(outputDir, { recursive: true });
  db = await createTestDatabase();
  // Credits as production mounts them: expiry timers on a real Temporal server, purchases through the provider simulator.
  env = await timed('start Temporal', () => localEnvironment());
  sim = await startProviderSimulator({ port: await freePort() });
  t = await startKeysApp(db, {
    clock,
    billing: { client: env.client, taskQueue: 'portal-test', allowedLatenessMs: 0, dunning: [], usageReportIntervalMs: 300_000 },
    provider: createHttpPaymentProvider({ baseUrl: sim.url, timeoutMs: 5000 }),
  });
  browser = await timed('launch Chromium', () => chromium.launch({ executablePath: chromiumPath, headless: true }));

  const calls = await createMeter(
    db.pool,
    { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} },
    'system',
  );
  const tokens = await createMeter(
    db.pool,
    { code: 'llm_tokens', name: 'LLM tokens', event_type: 'llm_tokens', aggregation: 'sum', value_property: 'tokens', filter: {} },
    'system',
  );
  const plan = planSchema({ knownMeters: new Set(['api_calls', 'llm_tokens']) }).parse({
    id: 'portal-plan',
    name: 'Portal plan',
    currency: 'USD',
    base_fee: '5.00',
    charges: [
      { meter: 'api_calls', model: 'per_unit', unit_price: '0.01' },
      {
        meter: 'llm_tokens',
        model: 'graduated',
        tiers: [
          { up_to: '5000', unit_price: '0.00002' },
          { up_to: null, unit_price: '0.00001' },
        ],
      },
    ],
    interval: { kind: 'calendar_month' },
    limits: [
      { meter: 'api_calls', soft_thresholds: [{ percent: 50 }, { percent: 80 }], hard_limit: '300', at_hard_limit: 'block' },
      { meter: 'llm_tokens', soft_thresholds: [{ absolute: '100000' }] },
    ],
  });
  await createPlan(db.pool, plan, 'system');
  // The upgrade hooli moves to: ten times the hard limit, the same soft thresholds.
  const larger = planSchema({ knownMeters: new Set(['api_calls', 'llm_tokens']) }).parse({
    ...plan,
    id: 'portal-plan-large',
    name: 'Portal plan, large',
    base_fee: '50.00',
    limits: [{ ...plan.limits[0]!, hard_limit: '3000' }, plan.limits[1]!],
  });
  await createPlan(db.pool, larger, 'system');
  const invoices = new InvoiceService(db.pool, clock);
  for (const [name, callsNow] of [
    ['acme', 320],
    ['globex', 40],
  ] as const) {
    const { customer } = await createCustomer(db.pool, { external_id: name, name: `${name} Inc.`, currency: 'USD' }, 'system');
    const sub = await createSubscription(db.pool, {
      customerId: customer.id,
      planCode: plan.id,
      anchor: previousPeriod.start,
      actor: 'system',
    });
    assert.ok(sub.created);
    await storeEvents(db.pool, { customerId: customer.id, meterId: calls.meter.id, from: previousPeriod.start, count: 50 });
    const { invoiceId } = await invoices.draft(
      {
        subscriptionId: sub.subscription.id,
        customerId: customer.id,
        planCode: plan.id,
        periodStart: previousPeriod.start.toISOString(),
        periodEnd: previousPeriod.end.toISOString(),
      },
      3,
      'system',
    );
    assert.ok((await invoices.finalize(invoiceId, 'system', defaultIssuer())).ok);
    invoiceIds[name] = invoiceId;
    if (name === 'acme') {
      const closed = {
        subscriptionId: sub.subscription.id,
        customerId: customer.id,
        planCode: plan.id,
        periodStart: closedPeriod.start.toISOString(),
        periodEnd: closedPeriod.end.toISOString(),
      };
      invoiceIds.acmeDraft = (await invoices.draft(closed, 3, 'system')).invoiceId;
    }
    // This period's usage spread over several days, so the chart has a trend to show.
    for (const [from, share] of [
      [day(1), 0.2],
      [day(3), 0.3],
      [day(6), 0.3],
      [day(9), 0.2],
    ] as const)
      await storeEvents(db.pool, { customerId: customer.id, meterId: calls.meter.id, from, count: callsNow * share });
    for (const from of [day(1, 1), day(2), day(4), day(7), day(9)])
      await storeEvents(db.pool, { customerId: customer.id, meterId: tokens.meter.id, from, count: 1, value: '1500' });
  }
  // acme went over its hard limit: the billing workflow's activities publish and block exactly so.
  const acmeId = (await db.pool.query<{ id: string }>("select id from customers where external_id = 'acme'")).rows[0]!.id;
  await saveQuotaState(db.pool, {
    customerId: acmeId,
    meter: 'api_calls',
    usage: '320',
    hardLimit: '300',
    state: 'blocked',
    notified: ['50%', '80%'],
    nextDecision: null,
    periodEnd: currentPeriod.end,
    asOf: started,
  });
  await saveBlockDecision(db.pool, {
    customerId: acmeId,
    meter: 'api_calls',
    blocked: true,
    resetsAt: currentPeriod.end,
    now: started,
    actor: 'system',
  });
  admin = (await t.issue({ scopes: ['billing:admin', 'billing:read', 'usage:read'] })).secret;
  const grant = { reference: 'welcome', source: 'promotional', currency: 'USD', amount: '12.50', expires_at: '2027-01-01T00:00:00Z' };
  assert.equal((await call(admin, 'POST', '/v1/customers/acme/credits', grant)).status, 201);
  await waitFor(
    async () => (await ok(admin, 'POST', '/v1/entitlements/check', { customer: 'acme', meter: 'api_calls' })).allowed === false,
    {
      description: "acme's block reaches the API's memory",
    },
  );
  // hooli crossed 50% and 80% of the small plan's 300 calls, then upgraded on day 6: the billing
  // workflow keeps the thresholds notified this period (each is notified once per period) and
  // publishes them with the new plan's hard limit, of which 320 calls are 10%.
  const { customer: hooli } = await createCustomer(db.pool, { external_id: 'hooli', name: 'hooli Inc.', currency: 'USD' }, 'system');
  const hooliSub = await createSubscription(db.pool, {
    customerId: hooli.id,
    planCode: plan.id,
    anchor: currentPeriod.start,
    actor: 'system',
  });
  assert.ok(hooliSub.created);
  await storeEvents(db.pool, { customerId: hooli.id, meterId: calls.meter.id, from: day(2), count: 250 });
  const upgraded = await changePlan(db.pool, hooliSub.subscription.id, larger.id, 'system', { scheduled: false, at: day(6) });
  assert.equal(upgraded.outcome, 'changed');
  await storeEvents(db.pool, { customerId: hooli.id, meterId: calls.meter.id, from: day(8), count: 70 });
  await saveQuotaState(db.pool, {
    customerId: hooli.id,
    meter: 'api_calls',
    usage: '320',
    hardLimit: '3000',
    state: 'ok',
    notified: ['50%', '80%'],
    nextDecision: null,
    periodEnd: currentPeriod.end,
    asOf: started,
  });
  await waitFor(
    async () => (await ok(admin, 'POST', '/v1/entitlements/check', { customer: 'hooli', meter: 'api_calls' })).hard_limit === '3000',
    { description: "hooli's quota state reaches the API's memory" },
  );
});

after(async () => {
  await browser?.close();
  await t?.close();
  await sim?.close();
  await env?.teardown();
  await db?.drop();
  if (timings.length) console.log(`portal browser test timings:\n  ${timings.join('\n  ')}`);
});

/** Every figure the page must show, as the API answers it to an unrestricted admin key (an instant as the API's own ISO text). */
async function expectedFigures(customer: string, session: { expiresAt: string }): Promise<Record<string, string>> {
  const figures: Record<string, string> = {};
  const upcoming = await ok(admin, 'GET', `/v1/invoices/upcoming?customer=${customer}`);
  figures['session.expires_at'] = session.expiresAt;
  figures['period.start'] = upcoming.period.start;
  figures['period.end'] = upcoming.period.end;
  figures['upcoming.as_of'] = upcoming.as_of;
  figures['upcoming.period.start'] = upcoming.period.start;
  figures['upcoming.period.end'] = upcoming.period.end;
  const plan = await ok(admin, 'GET', `/v1/plans/${upcoming.plan}`);
  for (const meter of ['api_calls', 'llm_tokens']) {
    const range = new URLSearchParams({ customer, meter, from: upcoming.period.start, to: upcoming.period.end, granularity: 'day' });
    const usage = await ok(admin, 'GET', `/v1/usage?${range}`);
    figures[`usage.${meter}`] = usage.value ?? 'none';
    figures[`usage.${meter}.event_count`] = usage.event_count;
    for (const b of usage.buckets.filter((b: Json) => b.start <= upcoming.as_of)) {
      figures[`bucket.${meter}.${b.start}`] = b.value ?? 'none';
      figures[`bucket.${meter}.${b.start}.start`] = b.start;
    }
    const limit = plan.limits.find((l: Json) => l.meter === meter);
    figures[`limit.${meter}.used`] = usage.value ?? '0';
    const check = await ok(admin, 'POST', '/v1/entitlements/check', { customer, meter });
    if (limit.hard_limit !== undefined) {
      figures[`limit.${meter}.hard_limit`] = limit.hard_limit;
      figures[`limit.${meter}.percent`] = `${(BigInt(usage.value) * 100n) / BigInt(limit.hard_limit)}%`;
    }
    if (check.remaining !== null) figures[`limit.${meter}.remaining`] = check.remaining;
    if (!check.allowed) {
      figures[`limit.${meter}.resets_at`] = check.resets_at;
      figures['blocked.resets_at'] ??= check.resets_at;
    }
    for (const threshold of limit.soft_thresholds)
      if ('absolute' in threshold)
        figures[`limit.${meter}.threshold.${threshold.absolute}`] = `${usage.value ?? '0'} of ${threshold.absolute}`;
  }
  for (const line of upcoming.lines) {
    figures[`upcoming.line.${line.position}.amount`] = `${line.amount} ${upcoming.currency}`;
    if (line.quantity !== null) figures[`upcoming.line.${line.position}.quantity`] = line.quantity;
  }
  figures['upcoming.total'] = `${upcoming.total} ${upcoming.currency}`;
  const credits = await ok(admin, 'GET', `/v1/customers/${customer}/credits`);
  if (credits.grants.length > 0) figures['credits.balance'] = `${credits.balance} ${credits.currency}`;
  for (const invoice of (await ok(admin, 'GET', `/v1/invoices?customer=${customer}`)).data) {
    figures[`invoice.${invoice.id}.total`] = `${invoice.total} ${invoice.currency}`;
    if (invoice.number !== null) figures[`invoice.${invoice.id}.number`] = invoice.number;
    figures[`invoice.${invoice.id}.period_start`] = invoice.period.start;
    figures[`invoice.${invoice.id}.period_end`] = invoice.period.end;
  }
  return figures;
}

/** The points each meter's chart must draw: the running total of the API's daily buckets up to the estimate's instant. */
async function expectedCharts(customer: string): Promise<number[][][]> {
  const upcoming = await ok(admin, 'GET', `/v1/invoices/upcoming?customer=${customer}`);
  const seconds = (iso: string) => Date.parse(iso) / 1000;
  const charts: number[][][] = [];
  for (const meter of ['api_calls', 'llm_tokens']) {
    const range = new URLSearchParams({ customer, meter, from: upcoming.period.start, to: upcoming.period.end, granularity: 'day' });
    const buckets = (await ok(admin, 'GET', `/v1/usage?${range}`)).buckets.filter((b: Json) => b.start <= upcoming.as_of);
    const xs = [seconds(upcoming.period.start)];
    const ys = [0];
    for (const b of buckets) {
      xs.push(Math.min(seconds(b.end), seconds(upcoming.as_of)));
      ys.push(ys.at(-1)! + Number(b.value));
    }
    charts.push([xs, ys]);
  }
  return charts;
}

describe('customer portal in headless Chromium', () => {
  let acme: { id: string; url: string; token: string; expiresAt: string };

  test('a portal session shows every figure exactly as the API answers it, all from this server', async () => {
    acme = await openSession('acme');
    assert.match(acme.url, /^http:\/\/127\.0\.0\.1:\d+\/portal#mf_portal_[A-Za-z0-9_-]{32}$/);
    const { page, requests } = await timed('open the portal (to all figures shown)', () => openPortal(acme.url));
    assert.equal(await page.getAttribute('body', 'data-state'), 'ready', (await page.textContent('main')) ?? '');
    const shown = await shownFigures(page);
    const expected = await expectedFigures('acme', acme);
    assert.deepEqual(shown, expected);
    // Spot checks that the comparison is about real figures: 320 calls, 5 × 1500 tokens, the base fee, last month's 50 calls.
    assert.equal(shown['usage.api_calls'], '320');
    assert.equal(shown['usage.llm_tokens'], '7500');
    assert.equal(shown['limit.api_calls.percent'], '106%');
    assert.equal(shown[`invoice.${invoiceIds.acme}.total`], '5.50 USD');
    assert.equal(shown['credits.balance'], '12.50 USD');
    assert.equal(shown['usage.api_calls.event_count'], '320');
    assert.equal(shown['limit.api_calls.resets_at'], currentPeriod.end.toISOString());
    assert.equal(shown['session.expires_at'], new Date(started.getTime() + 3_600_000).toISOString());
    assert.ok(!Object.keys(shown).some((k) => k.includes(invoiceIds.globex)), "globex's invoice is not on acme's page");

    // Said in words, not colour alone: the block, the thresholds reached, and where to upgrade.
    assert.match((await page.textContent('[data-status="api_calls"]'))!, /Blocked/);
    assert.match((await page.textContent('[data-threshold="80%"]'))!, /80%: reached/);
    assert.equal(await page.textContent('[data-threshold="100000"]'), '100000: not reached, 7500 of 100000');
    assert.equal(await page.getAttribute('#upgrade-link', 'href'), '/upgrade');
    assert.equal(await page.locator('canvas').count(), 2, 'one usage chart per meter');
    // The charts draw the running total of the API's daily series, from 0 at the period start up to the estimate's instant.
    const drawn = await page.$$eval('.chart', (els) =>
      els.map((e) => (e as unknown as { plot: { data: number[][] } }).plot.data.map((axis) => Array.from(axis))),
    );
    assert.deepEqual(drawn, await expectedCharts('acme'));
    for (const [, ys = []] of drawn) assert.ok(new Set(ys).size > 3, `a trend, not a point: ${ys.join(', ')}`);

    // Everything came from this server (no CDN), and the token left the address bar.
    const origin = new URL(acme.url).origin;
    assert.deepEqual(
      requests.filter((r) => !r.startsWith(`${origin}/`)),
      [],
    );
    assert.ok(requests.some((r) => r === `${origin}/portal/assets/uplot.js`));
    assert.equal(new URL(page.url()).hash, '');
    assert.ok(!t.logs.join('').includes(acme.token), 'the token never reaches the server log');

    await screenshot(page, 'portal');

    // Keyboard: the first Tab reaches the skip link, and the upgrade link and the invoice's download button are reachable.
    const focused: string[] = [];
    for (let i = 0; i < 15; i++) {
      await page.keyboard.press('Tab');
      focused.push(await page.evaluate<string>("document.activeElement?.id || document.activeElement?.textContent?.trim() || ''"));
    }
    assert.equal(focused[0], 'Skip to the content');
    assert.ok(focused.includes('upgrade-link'), `focus order: ${focused.join(' | ')}`);
    assert.ok(focused.includes('Download PDF'), `focus order: ${focused.join(' | ')}`);

    // The issued invoice downloads as a PDF named after its number; the draft has no number and no button, and says so.
    const issued = await ok(admin, 'GET', `/v1/invoices/${invoiceIds.acme}`);
    assert.match(issued.number, /^[A-Z]+-\d{4}-\d{6}$/);
    assert.equal(shown[`invoice.${invoiceIds.acme}.number`], issued.number);
    const draftRow = page.locator(`[data-invoice="${invoiceIds.acmeDraft}"]`);
    assert.equal((await ok(admin, 'GET', `/v1/invoices/${invoiceIds.acmeDraft}`)).status, 'draft');
    assert.equal(await draftRow.locator('button').count(), 0);
    assert.equal(await draftRow.locator(`[data-no-document="${invoiceIds.acmeDraft}"]`).textContent(), 'Not issued yet');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click(`[data-invoice="${invoiceIds.acme}"] button:text("Download PDF")`),
    ]);
    assert.equal(download.suggestedFilename(), `${issued.number}.pdf`);
    const pdf = await readFile((await download.path())!);
    assert.equal(pdf.subarray(0, 5).toString('latin1'), '%PDF-');
    assert.ok((await pdfText(pdf)).includes(issued.number), 'the PDF is the invoice it is named after');
    await page.close();
  });

  test("after a plan change the limits shown are the current plan's: no threshold reached at 10 %", async () => {
    const session = await openSession('hooli');
    const { page } = await openPortal(session.url);
    assert.equal(await page.getAttribute('body', 'data-state'), 'ready', (await page.textContent('main')) ?? '');
    const shown = await shownFigures(page);
    assert.deepEqual(shown, await expectedFigures('hooli', session));
    assert.equal((await ok(admin, 'GET', '/v1/invoices/upcoming?customer=hooli')).plan, 'portal-plan-large');
    assert.equal(shown['limit.api_calls.hard_limit'], '3000');
    assert.equal(shown['limit.api_calls.percent'], '10%');
    const check = await ok(admin, 'POST', '/v1/entitlements/check', { customer: 'hooli', meter: 'api_calls' });
    assert.deepEqual(check.thresholds_notified, ['50%', '80%'], 'the API still names the thresholds notified under the old plan');
    assert.equal(await page.textContent('[data-threshold="50%"]'), '50%: not reached');
    assert.equal(await page.textContent('[data-threshold="80%"]'), '80%: not reached');
    assert.match((await page.textContent('[data-status="api_calls"]'))!, /Within the limit/);
    await page.close();
  });

  test("the session's token reaches nothing of another customer and nothing beyond the portal's reads", async () => {
    const as = (method: string, route: string, body?: unknown) => call(acme.token, method, route, body);
    const absent = [
      '/v1/customers/globex',
      '/v1/invoices/upcoming?customer=globex',
      '/v1/customers/globex/credits',
      `/v1/invoices/${invoiceIds.globex}`,
      `/v1/usage?customer=globex&meter=api_calls&from=${currentPeriod.start.toISOString()}&to=${currentPeriod.end.toISOString()}`,
    ];
    for (const route of absent) assert.equal((await as('GET', route)).status, 404, route);
    assert.deepEqual((await as('GET', '/v1/invoices?customer=globex')).body.data, []);
    assert.equal((await as('POST', '/v1/entitlements/check', { customer: 'globex', meter: 'api_calls' })).status, 404);
    for (const [method, route, body] of [
      ['POST', '/v1/events', { id: 'portal-1', customer: 'acme', type: 'api_call' }],
      ['GET', '/v1/keys/current', undefined],
      ['GET', '/v1/customers', undefined],
      ['POST', '/v1/portal-sessions', { customer: 'acme' }],
      ['POST', `/v1/invoices/${invoiceIds.acme}/void`, { reason: 'portal' }],
      ['POST', '/v1/pricing/preview', { plan: {}, usage: {} }],
    ] as const) {
      const answer = await as(method, route, body);
      assert.equal(answer.status, 403, `${method} ${route}`);
      assert.equal(answer.body.reason, 'portal_read_only', `${method} ${route}`);
    }
    // …while its own customer's reads answer.
    assert.equal((await as('GET', `/v1/invoices/${invoiceIds.acme}`)).status, 200);
  });

  test('an expired link gets a page that says so; a revoked one stops at the next request; both are audited', async () => {
    const short = await openSession('acme', 60);
    clock.advance(61_000);
    const { page } = await timed('open an expired link', () => openPortal(short.url, ['401 /v1/portal-sessions/current']));
    assert.equal(await page.getAttribute('body', 'data-state'), 'no-access');
    assert.equal(await page.textContent('h1'), 'This portal link has expired');
    assert.equal(await page.locator('[data-figure]').count(), 0, 'no data on an expired link');
    await screenshot(page, 'portal-expired');
    await page.close();
    assert.equal((await call(short.token, 'GET', '/v1/portal-sessions/current')).status, 401);

    const revoked = await ok(admin, 'DELETE', `/v1/portal-sessions/${acme.id}`);
    assert.ok(revoked.revoked_at);
    assert.equal((await call(acme.token, 'GET', '/v1/portal-sessions/current')).status, 401);
    assert.deepEqual(
      (await ok(admin, 'DELETE', `/v1/portal-sessions/${acme.id}`)).revoked_at,
      revoked.revoked_at,
      'revoking again changes nothing',
    );
    const { rows } = await db.pool.query<{ action: string; subject_id: string }>(
      "select action, subject_id from audit_log where subject_type = 'portal_session' order by id",
    );
    assert.deepEqual(
      rows.filter((r) => r.subject_id === acme.id).map((r) => r.action),
      ['portal_session.created', 'portal_session.revoked'],
    );
  });

  test('without a token the page says it needs a portal link; bad input to the sessions API is a 400 and creates nothing', async () => {
    const { page } = await openPortal(`${t.url}/portal`);
    assert.equal(await page.getAttribute('body', 'data-state'), 'no-access');
    assert.equal(await page.textContent('h1'), 'This page needs a portal link');
    await page.close();
    const before = (await db.pool.query('select count(*)::int as n from portal_sessions')).rows[0].n;
    for (const body of [
      { customer: 'acme', expires_in: 86_401 },
      { customer: 'acme', expires_in: 59 },
      { expires_in: 60 },
      { customer: 'acme', extra: 1 },
    ])
      assert.equal((await call(admin, 'POST', '/v1/portal-sessions', body)).status, 400, JSON.stringify(body));
    assert.equal((await call(admin, 'POST', '/v1/portal-sessions', { customer: 'nobody' })).status, 422);
    assert.equal((await call(admin, 'DELETE', '/v1/portal-sessions/00000000-0000-4000-8000-000000000000')).status, 404);
    assert.equal((await db.pool.query('select count(*)::int as n from portal_sessions')).rows[0].n, before);
  });
});
