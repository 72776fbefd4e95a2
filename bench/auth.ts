/**
 * `npm run bench:auth`: requests/s and latency of an authenticated, rate-limited endpoint
 * (`GET /v1/keys/current`: key verification + per-key rate limit + a JSON answer), and the
 * database queries per request on that path in steady state, measured by counting every query
 * any pg client of the server process sends. A run against /healthz on the same server gives
 * the cost of the Express stack without authentication, for comparison. The server runs in a child process so the load
 * generator does not share its event loop.
 *
 *   BENCH_SECONDS (10)  BENCH_CONNECTIONS (32)
 */
import { once } from 'node:events';
import autocannon from 'autocannon';
import { freePort } from '../scripts/free-port';
import { forkBenchApi, issueBenchKey, queriesSoFar, serveCountingQueries, startBenchDatabase } from './support';

async function main(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);
  const db = await startBenchDatabase('auth');
  const port = await freePort();
  const child = forkBenchApi(import.meta.filename, ['serve', db.url, String(port)]);
  try {
    await once(child, 'message');
    const secret = await issueBenchKey(db.url, ['usage:read']);

    const url = `http://127.0.0.1:${port}/v1/keys/current`;
    const headers = { authorization: `Bearer ${secret}` };
    const warm = await fetch(url, { headers });
    if (warm.status !== 200) throw new Error(`warm-up request answered ${warm.status}`);
    const before = await queriesSoFar(child);
    const result = await autocannon({ url, connections, duration: seconds, headers });
    const queries = (await queriesSoFar(child)) - before;

    // The same server and middleware stack without authentication, for the cost of auth alone.
    const baseline = await autocannon({ url: `http://127.0.0.1:${port}/healthz`, connections, duration: seconds });

    const requests = result.requests.total;
    const ok = result['2xx'];
    console.log(`GET /v1/keys/current, ${connections} connections, ${seconds} s, one key (cached after the warm-up request)`);
    console.log(
      `requests/s: ${Math.round(result.requests.average).toLocaleString('en-US')} (total ${requests.toLocaleString('en-US')}, 2xx ${ok.toLocaleString('en-US')}, non-2xx ${result.non2xx}, errors ${result.errors})`,
    );
    console.log(`latency ms: p50 ${result.latency.p50}  p99 ${result.latency.p99}  max ${result.latency.max}`);
    console.log(
      `baseline GET /healthz (no auth, same stack): ${Math.round(baseline.requests.average).toLocaleString('en-US')} requests/s, p99 ${baseline.latency.p99} ms`,
    );
    console.log(
      `database queries per request (steady state): ${(queries / requests).toFixed(4)} (${queries} queries in ${requests} requests)`,
    );
    const res = await fetch(url, { headers });
    console.log(`headers: RateLimit-Policy: ${res.headers.get('ratelimit-policy')} | RateLimit: ${res.headers.get('ratelimit')}`);
    if (queries !== 0 || ok !== requests) process.exitCode = 1;
  } finally {
    child.kill();
    await once(child, 'exit');
    await db.stop();
  }
}

if (process.argv[2] === 'serve') await serveCountingQueries(process.argv[3]!, Number(process.argv[4]));
else await main();
