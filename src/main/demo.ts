import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Pool } from '../db/pool';
import type { Keys } from '../keys/keys';
import { createCustomer } from '../metering/customer-store';
import { createMeter } from '../metering/meter-store';

const CUSTOMER = 'demo-acme';

const plan = {
  id: 'demo-growth',
  currency: 'USD',
  base_fee: '49.00',
  charges: [
    { meter: 'api_calls', model: 'package', package_size: '100', package_price: '0.50', free_units: '100' },
    {
      meter: 'llm_tokens',
      model: 'graduated',
      tiers: [
        { up_to: '100000', unit_price: '0.00002' },
        { up_to: '1000000', unit_price: '0.000015' },
        { up_to: null, unit_price: '0.00001' },
      ],
    },
  ],
};

async function reusableKey(api: string, keyFile: string): Promise<string | undefined> {
  const secret = (await readFile(keyFile, 'utf8').catch(() => '')).trim();
  if (!secret) return undefined;
  const res = await fetch(`${api}/v1/keys/current`, { headers: { authorization: `Bearer ${secret}` } });
  return res.ok ? secret : undefined;
}

async function issueDemoKey(keys: Keys, keyFile: string): Promise<string> {
  const { secret } = await keys.service.create(
    { name: 'demo', environment: 'test', scopes: ['events:write', 'usage:read', 'billing:read'], customer: CUSTOMER },
    'system',
  );
  await writeFile(keyFile, `${secret}\n`, { mode: 0o600 });
  await chmod(keyFile, 0o600);
  return secret;
}

/**
 * What `npm start` shows on a fresh machine: a demo customer with two meters, usage sent through
 * the real API (authenticated, deduplicated, committed), read back, and priced. Its key is
 * restricted to the demo customer and kept in DATA_DIR (mode 0600), never printed.
 */
export async function runDemo(opts: { api: string; pool: Pool; keys: Keys; dataDir: string; logger: Logger }): Promise<void> {
  const { api, pool, keys, logger } = opts;
  await createCustomer(pool, { external_id: CUSTOMER, name: 'Acme (demo)', currency: 'USD' });
  await createMeter(pool, { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} });
  await createMeter(pool, { code: 'llm_tokens', name: 'LLM tokens', event_type: 'llm_tokens', aggregation: 'sum', value_property: 'tokens', filter: {} });
  const keyFile = path.resolve(opts.dataDir, 'demo-key');
  const secret = (await reusableKey(api, keyFile)) ?? (await issueDemoKey(keys, keyFile));
  const call = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(`${api}${route}`, {
      method,
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`${method} ${route} → ${res.status}: ${JSON.stringify(json)}`);
    return json;
  };

  const run = Date.now().toString(36);
  const now = Date.now();
  const events = Array.from({ length: 500 }, (_, i) => ({
    id: `demo-${run}-${i}`,
    type: i % 2 ? 'llm_tokens' : 'api_call',
    timestamp: new Date(now - (500 - i) * 1000).toISOString(),
    properties: i % 2 ? { tokens: String(900 + (i % 7) * 150), model: 'small' } : { path: '/v1/search' },
  }));
  const first = await call('POST', '/v1/events', events);
  const retry = await call('POST', '/v1/events', events.slice(0, 100));
  const from = new Date(now - 3_600_000).toISOString();
  const to = new Date(now + 60_000).toISOString();
  const usage: Record<string, string> = {};
  for (const meter of ['api_calls', 'llm_tokens']) {
    const u = await call('GET', `/v1/usage?meter=${meter}&from=${from}&to=${to}`);
    usage[meter] = String(u.value);
  }
  const priced = (await call('POST', '/v1/pricing/preview', { plan, usage })) as {
    lines: Array<{ description: string; amount: string }>;
    totals: { total: string };
  };
  logger.info(
    {
      customer: CUSTOMER,
      sent: { accepted: first.accepted, duplicate: first.duplicate },
      resent_100: { accepted: retry.accepted, duplicate: retry.duplicate },
      usage_last_hour: usage,
      invoice_preview: Object.fromEntries(priced.lines.map((l) => [l.description, l.amount])),
      total: `${priced.totals.total} USD`,
    },
    'demo: 500 events sent, 100 of them again (deduplicated), usage read back and priced',
  );
  logger.info(
    `demo: try it — KEY=$(cat ${path.relative(process.cwd(), keyFile)}); ` +
      `curl -s -H "Authorization: Bearer $KEY" '${api}/v1/usage?meter=llm_tokens&from=${from}&to=${to}'`,
  );
}
