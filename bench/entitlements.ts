/**
 * `npm run bench:entitlements`: checks/s and latency of `POST /v1/entitlements/check` through the
 * production API composition (key verification, rate limit, validation, the answer from memory),
 * over many customers of which some are blocked, and the database queries per check in steady
 * state, counted on every pg client of the server process (must be 0). The blocks are written
 * by the setEntitlement activity and reach the server through its entitlement listener. The server
 * runs in a child process so the load generator does not share its event loop.
 *
 *   BENCH_SECONDS (10)  BENCH_CONNECTIONS (32)  BENCH_CUSTOMERS (1000)  BENCH_BLOCKED_EVERY (10)
 */
import { once } from 'node:events';
import autocannon from 'autocannon';
import { createSetEntitlement } from '../src/activities/set-entitlement';
import { systemClock } from '../src/clock';
import { createPool } from '../src/db/pool';
import { freePort } from '../scripts/free-port';
import { forkBenchApi, issueBenchKey, queriesSoFar, seedTokensCatalog, serveCountingQueries, startBenchDatabase } from './support';

async function main(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);
  const customers = Number(process.env.BENCH_CUSTOMERS ?? 1000);
  const blockedEvery = Number(process.env.BENCH_BLOCKED_EVERY ?? 10);

  const db = await startBenchDatabase('entitlements');
  const pool = createPool(db.url, 4);
  const { customerIds } = await seedTokensCatalog(pool, customers);
  const secret = await issueBenchKey(db.url, ['usage:read']);
  const port = await freePort();
  const child = forkBenchApi(import.meta.filename, ['serve', db.url, String(port)]);
  try {
    await once(child, 'message');
    const url = `http://127.0.0.1:${port}/v1/entitlements/check`;
    const headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json' };
    const bodyFor = (i: number) => JSON.stringify({ customer: `cust-${i % customers}`, meter: 'tokens', quantity: '1' });
    const checkOne = async (i: number) =>
      (await (await fetch(url, { method: 'POST', headers, body: bodyFor(i) })).json()) as { allowed: boolean };

    // Blocks go through the activity and the server's listener, as in production.
    const setEntitlement = createSetEntitlement({ pool, clock: systemClock });
    const periodEnd = new Date(Date.now() + 3_600_000).toISOString();
    const blocked = customerIds.map((id, n) => ({ id, n })).filter((c) => c.n % blockedEvery === 0);
    for (const { id } of blocked) await setEntitlement({ customerId: id, meter: 'tokens', blocked: true, periodEnd });
    const lastBlocked = Math.max(...blocked.map((c) => c.n));
    const waitStart = performance.now();
    while ((await checkOne(lastBlocked)).allowed) {
      if (performance.now() - waitStart > 5000) throw new Error('the server did not hear the blocks');
      await new Promise((r) => setTimeout(r, 10));
    }
    // Warm-up: every customer once, so the key and the customers are in the API's caches.
    for (let i = 0; i < customers; i++) await checkOne(i);

    let n = 0;
    let refused = 0;
    const before = await queriesSoFar(child);
    const result = await autocannon({
      url,
      connections,
      duration: seconds,
      method: 'POST',
      headers,
      requests: [
        {
          setupRequest: (req) => ({ ...req, body: bodyFor(n++) }),
          onResponse: (_status, body) => {
            if (body.includes('"allowed":false')) refused++;
          },
        },
      ],
    });
    const queries = (await queriesSoFar(child)) - before;

    const requests = result.requests.total;
    const ok = result['2xx'];
    console.log(
      `POST /v1/entitlements/check, ${connections} connections, ${seconds} s, ${customers} customers, ${blocked.length} of them blocked on the meter`,
    );
    console.log(
      `checks/s: ${Math.round(result.requests.average).toLocaleString('en-US')} (total ${requests.toLocaleString('en-US')}, 2xx ${ok.toLocaleString('en-US')}, refused ${refused.toLocaleString('en-US')}, non-2xx ${result.non2xx}, errors ${result.errors})`,
    );
    console.log(`latency ms: p50 ${result.latency.p50}  p99 ${result.latency.p99}  max ${result.latency.max}`);
    console.log(`database queries per check (steady state): ${(queries / requests).toFixed(4)} (${queries} queries in ${requests} checks)`);
    if (queries !== 0 || ok !== requests || refused === 0) process.exitCode = 1;
  } finally {
    child.kill();
    await once(child, 'exit');
    await pool.end();
    await db.stop();
  }
}

if (process.argv[2] === 'serve') await serveCountingQueries(process.argv[3]!, Number(process.argv[4]));
else await main();
