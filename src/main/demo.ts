import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { unwrap } from '../api/refusal';
import { listInvoices, type Invoice } from '../invoices/store';
import type { Pool } from '../db/pool';
import type { Keys } from '../keys/keys';
import { createCustomer, getCustomer } from '../customers/store';
import { createMeter } from '../meters/store';
import { billingState, workflowIdFor, type BillingPeriodView } from '../workflows/billing-period';

/*
 * What `npm start` shows on a fresh machine, live: a demo customer on a small plan with 2-minute
 * billing periods, and a usage generator sending events through the real API. Within a few
 * minutes the customer crosses its soft thresholds (webhook notifications), reaches its hard
 * limit, is blocked after the grace period (the API answers 429), is upgraded, and the period is
 * closed, invoiced and charged through the payment-provider simulator; then the next period
 * starts on the small plan again, so the story repeats. The console narrates; the Temporal UI
 * shows each step in the workflow's history.
 */

const CUSTOMER = 'demo-acme';
const SMALL = 'demo-starter';
const LARGE = 'demo-scale';
const UPGRADE_AFTER_BLOCKED_MS = 15_000;

const plan = (id: string, name: string, hardLimit: string) => ({
  id,
  name,
  currency: 'USD',
  base_fee: '5.00',
  charges: [
    { meter: 'api_calls', model: 'per_unit', unit_price: '0.01' },
    {
      meter: 'llm_tokens',
      model: 'graduated',
      tiers: [
        { up_to: '100000', unit_price: '0.00002' },
        { up_to: null, unit_price: '0.00001' },
      ],
    },
  ],
  interval: { kind: 'duration', iso: 'PT2M' },
  limits: [
    {
      meter: 'api_calls',
      soft_thresholds: [{ percent: 50 }, { percent: 80 }, { percent: 100 }],
      hard_limit: hardLimit,
      grace_period: 'PT20S',
      at_hard_limit: 'block',
    },
  ],
});

export interface DemoOptions {
  api: string;
  temporalUi: string | undefined;
  pool: Pool;
  keys: Keys;
  client: Client;
  dataDir: string;
  logger: Logger;
}

/** Starts the demo; the returned function stops its generator and narrator. */
export async function runDemo(opts: DemoOptions): Promise<() => Promise<void>> {
  const { api, pool, keys, logger } = opts;
  await createCustomer(pool, { external_id: CUSTOMER, name: 'Acme (demo)', currency: 'USD' }, 'system');
  await createMeter(pool, { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} }, 'system');
  await createMeter(
    pool,
    { code: 'llm_tokens', name: 'LLM tokens', event_type: 'llm_tokens', aggregation: 'sum', value_property: 'tokens', filter: {} },
    'system',
  );

  // The operator side (plans, subscription, upgrades) goes through the API with a short-lived
  // admin key that is never shown; the customer's own key is printed once and kept in DATA_DIR.
  const operator = unwrap(
    await keys.service.create('system', {
      name: 'demo operator',
      environment: 'test',
      scopes: ['billing:admin', 'billing:read'],
      expiresAt: new Date(Date.now() + 12 * 3_600_000),
    }),
  );
  const admin = client(api, operator.secret);
  const customerKey = await demoCustomerKey(api, keys, path.resolve(opts.dataDir, 'demo-key'), logger);
  const customer = client(api, customerKey);

  for (const p of [plan(SMALL, 'Demo starter (300 calls, 2-minute periods)', '300'), plan(LARGE, 'Demo scale (100k calls)', '100000')]) {
    await admin('POST', '/v1/plans', p);
  }
  let subscription = await admin('GET', `/v1/customers/${CUSTOMER}/subscription`, undefined, [404]);
  if (subscription.status === 404) subscription = await admin('POST', '/v1/subscriptions', { customer: CUSTOMER, plan: SMALL });
  const subscriptionId = String(subscription.body.id);

  const workflowUrl = opts.temporalUi && `${opts.temporalUi}/namespaces/default/workflows/${encodeURIComponent(workflowIdFor(CUSTOMER))}`;
  logger.info(
    { customer: CUSTOMER, plan: subscription.body.plan, temporal_ui: workflowUrl, invoices: `${api}/v1/invoices?customer=${CUSTOMER}` },
    `demo: ${CUSTOMER} is subscribed to ${SMALL} (api_calls: notify at 50/80/100% of 300, block 20 s after the limit; 2-minute periods). ` +
      `A generator sends ~10 events/s. Watch the billing workflow${workflowUrl ? ` at ${workflowUrl}` : ''}.`,
  );

  // The customer's view of the same story: a portal session (read-only, demo-acme only) for as long as allowed.
  const portal = await admin('POST', '/v1/portal-sessions', { customer: CUSTOMER, expires_in: 86_400 });
  logger.info(
    { customer: CUSTOMER, expires_at: portal.body.expires_at },
    `demo: customer portal for ${CUSTOMER} (usage, limits, upcoming invoice; open it in a browser): ${String(portal.body.url)}`,
  );

  let sent = 0;
  let refused = false;
  const generate = async () => {
    const now = Date.now();
    const batch = [
      ...Array.from({ length: 8 }, (_, i) => ({
        id: `demo-${now}-${i}`,
        customer: CUSTOMER,
        type: 'api_call',
        properties: { path: '/v1/search' },
      })),
      ...Array.from({ length: 2 }, (_, i) => ({
        id: `demo-${now}-t${i}`,
        customer: CUSTOMER,
        type: 'llm_tokens',
        properties: { tokens: String(800 + i * 450) },
      })),
    ];
    const res = await customer('POST', '/v1/events', batch, [429]);
    sent += batch.length;
    if (res.status === 429 || Number(res.body.rejected) > 0) {
      if (!refused)
        logger.warn('demo: the API refuses api_calls now (quota_exceeded, with the reset time and an upgrade link) — the meter is blocked');
      refused = true;
    } else if (refused) {
      logger.info('demo: the API accepts api_calls again');
      refused = false;
    }
  };

  let last: BillingPeriodView | undefined;
  let blockedSince: number | undefined;
  const invoices = new Map<string, string>();
  const narrate = async () => {
    const state = await opts.client.workflow.getHandle(workflowIdFor(CUSTOMER)).query(billingState);
    const calls = state.meters.api_calls;
    if (last && state.period.start !== last.period.start) {
      logger.info(
        { period: state.period, plan: state.planCode },
        `demo: period ${last.period.start} closed; the workflow continued as new into ${state.period.start}`,
      );
      if (state.planCode === LARGE) {
        // A downgrade waits for the period end by default; the new period has just begun, so now.
        await admin('POST', `/v1/subscriptions/${subscriptionId}/change-plan`, { plan: SMALL, effective: 'immediately' });
        logger.info(`demo: moved back to ${SMALL} for the new period, so the story repeats`);
      }
    }
    const before = last?.period.start === state.period.start ? last.meters.api_calls : undefined;
    for (const t of calls?.notified ?? []) {
      if (!before?.notified.includes(t))
        logger.info(
          { usage: calls?.usage },
          `demo: soft threshold ${t} crossed → threshold_crossed notification (outbox + signed webhook)`,
        );
    }
    if (calls && calls.limit.status !== before?.limit.status && calls.limit.status !== 'ok') {
      logger.info({ usage: calls.usage, limit: calls.limit }, `demo: api_calls is ${calls.limit.status.replaceAll('_', ' ')}`);
    }
    if (calls?.limit.status === 'blocked') {
      blockedSince ??= Date.now();
      if (Date.now() - blockedSince > UPGRADE_AFTER_BLOCKED_MS && state.planCode === SMALL) {
        await admin('POST', `/v1/subscriptions/${subscriptionId}/change-plan`, { plan: LARGE });
        logger.info(`demo: upgraded to ${LARGE} (a Temporal Update): limits re-evaluated at once, the meter is unblocked`);
      }
    } else {
      blockedSince = undefined;
    }
    last = state;

    const customerRow = await getCustomer(pool, CUSTOMER);
    for (const invoice of customerRow ? await listInvoices(pool, { customerId: customerRow.id }, 5) : []) {
      if (invoices.get(invoice.id) === invoice.status) continue;
      invoices.set(invoice.id, invoice.status);
      logger.info(
        describe(invoice, api),
        `demo: invoice for ${invoice.periodStart.toISOString()} is ${invoice.status} (${invoice.total} ${invoice.currency})`,
      );
    }
  };

  const timers = [every(1000, generate, logger, 'generator'), every(2000, narrate, logger, 'narrator')];
  return async () => {
    for (const stop of timers) await stop();
    logger.info({ sent }, 'demo: generator stopped');
  };
}

function describe(invoice: Invoice, api: string) {
  return {
    invoice: `${api}/v1/invoices/${invoice.id}`,
    lines: Object.fromEntries(invoice.lines.map((l) => [l.description, l.amount])),
    total: invoice.total,
  };
}

type Call = (
  method: string,
  route: string,
  body?: unknown,
  allowed?: number[],
) => Promise<{ status: number; headers: Headers; body: Record<string, unknown> }>;

function client(api: string, secret: string): Call {
  return async (method, route, body, allowed = []) => {
    const res = await fetch(`${api}${route}`, {
      method,
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok && !allowed.includes(res.status)) throw new Error(`${method} ${route} → ${res.status}: ${JSON.stringify(json)}`);
    return { status: res.status, headers: res.headers, body: json };
  };
}

/** The demo customer's key: reused from DATA_DIR when still valid, otherwise issued and printed once. */
async function demoCustomerKey(api: string, keys: Keys, keyFile: string, logger: Logger): Promise<string> {
  const saved = (await readFile(keyFile, 'utf8').catch(() => '')).trim();
  if (saved && (await fetch(`${api}/v1/keys/current`, { headers: { authorization: `Bearer ${saved}` } })).ok) return saved;
  const { secret } = unwrap(
    await keys.service.create('system', {
      name: 'demo customer',
      environment: 'test',
      scopes: ['events:write', 'usage:read', 'billing:read'],
      customer: CUSTOMER,
    }),
  );
  await writeFile(keyFile, `${secret}\n`, { mode: 0o600 });
  await chmod(keyFile, 0o600);
  // Shown once, as any new key is; it stays in the key file for the next `npm start`.
  logger.info({ key_file: path.relative(process.cwd(), keyFile) }, `demo: API key for ${CUSTOMER} (shown once): ${secret}`);
  return secret;
}

/** Runs `tick` every `ms` without overlapping itself; errors are logged, not fatal. */
function every(ms: number, tick: () => Promise<void>, logger: Logger, name: string): () => Promise<void> {
  let running: Promise<void> = Promise.resolve();
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    running = tick()
      .catch((err: unknown) => logger.warn({ err }, `demo ${name}: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => (busy = false));
  }, ms);
  return async () => {
    clearInterval(timer);
    await running;
  };
}
