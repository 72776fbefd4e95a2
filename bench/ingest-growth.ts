/**
 * `npm run bench:ingest:growth`: does ingest keep its speed when usage_events is big? In one run:
 * the HTTP ingest rate into the empty table, then BENCH_ROWS events pre-filled with COPY (not
 * through the API: a year of history in minutes), then the HTTP rate again on top of them.
 * Then the empty table again: the baseline is the mean of both empty-table runs, since load on a
 * shared machine drifts during a long pre-fill. Prints the ratio and the bytes each stored event
 * takes (table + indexes) with the pre-fill and what was ingested on top.
 *
 *   BENCH_ROWS (30000000)  BENCH_SECONDS (20)  BENCH_CONNECTIONS (8)  BENCH_BATCH (1000)  BENCH_CUSTOMERS (100)
 *   BENCH_COPY_WRITERS (2)
 */
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import { freePort } from '../scripts/free-port';
import { USAGE_EVENTS_COPY_SQL } from '../src/metering/ingest-writer';
import { createClient } from '../src/db/pool';
import { bytesPerStoredEvent } from './storage';
import { forkBenchApi, issueBenchKey, postEvents, seedTokensCatalog, serveBenchApi, startBenchDatabase } from './support';

const YEAR_MS = 365 * 86_400_000;
/** Rows per COPY statement (and transaction): progress is reported after each. */
const COPY_CHUNK = 500_000;

if (process.argv[2] === 'serve') {
  await serveBenchApi(process.argv[3]!, Number(process.argv[4]));
  process.send!('ready');
  process.once('SIGTERM', () => process.exit(0));
} else {
  await main();
}

async function main(): Promise<void> {
  const rows = Number(process.env.BENCH_ROWS ?? 30_000_000);
  const seconds = Number(process.env.BENCH_SECONDS ?? 20);
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 8);
  const batchSize = Number(process.env.BENCH_BATCH ?? 1000);
  const customers = Number(process.env.BENCH_CUSTOMERS ?? 100);
  const writers = Math.max(1, Number(process.env.BENCH_COPY_WRITERS ?? 2));

  const db = await startBenchDatabase('growth');
  const admin = createClient({ connectionString: db.url });
  await admin.connect();
  await seedTokensCatalog(admin, customers);
  const key = await issueBenchKey(db.url, ['events:write']);
  const port = await freePort();
  const server = forkBenchApi(import.meta.filename, ['serve', db.url, String(port)]);
  await once(server, 'message');

  // The API's event shape, as in bench/ingest.ts; ids never repeat across the two HTTP runs.
  let seq = 0;
  async function httpRun(label: string, duration = seconds): Promise<number> {
    const timestamp = new Date().toISOString();
    const body = () => {
      const events = new Array(batchSize);
      for (let k = 0; k < batchSize; k++) {
        const i = seq++;
        events[k] = {
          id: `evt-${i}`,
          customer: `cust-${i % customers}`,
          type: 'tokens',
          timestamp,
          properties: { tokens: String((i % 997) + 0.25), model: 'small' },
        };
      }
      return JSON.stringify(events);
    };
    const result = await postEvents({ base: `http://127.0.0.1:${port}`, key, connections, duration, body });
    if (result.non2xx > 0 || result.errors > 0) {
      console.error(`FAILED: ${label}: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
      process.exit(1);
    }
    const rate = (result['2xx'] * batchSize) / result.duration;
    console.log(
      `  ${label}: ${Math.round(rate)} events/s acknowledged (p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms), ${connections} connections × ${batchSize} events for ${duration} s`,
    );
    return rate;
  }
  const stored = async () => Number((await admin.query<{ n: string }>('select count(*)::text as n from usage_events')).rows[0]!.n);

  // Warm-up, not counted: JIT, connection pools and caches, so the first measured run is not handicapped.
  await httpRun('warm-up (not counted)', Math.min(5, seconds));
  console.log(`HTTP ingest into the empty table:`);
  const emptyRate = await httpRun('empty table');
  // Requests cut off when the run ended may still commit: wait until the table stops growing.
  for (let previous = -1, now = await stored(); now !== previous; previous = now, now = await stored())
    await new Promise((r) => setTimeout(r, 500));
  await admin.query('truncate usage_events, usage_counters');

  // Pre-fill: a year of history, oldest first, spread evenly over the customers and the year.
  const ids = (
    await admin.query<{ id: number }>(`select short_id as id from customers order by (substring(external_id from 6))::int`)
  ).rows.map((r) => r.id);
  const meterId = (await admin.query<{ id: number }>('select short_id as id from meters')).rows[0]!.id;
  const start = Date.now() - YEAR_MS;
  function* lines(from: number, to: number): Generator<string> {
    let chunk = '';
    for (let i = from; i < to; i++) {
      const tokens = String((i % 997) + 0.25);
      const t = new Date(start + Math.floor((i / rows) * YEAR_MS)).toISOString();
      chunk += `${ids[i % customers]}\tpre-${i}\t${meterId}\t${t}\t${t}\t${tokens}\t{"tokens":"${tokens}","model":"small"}\tt\tf\n`;
      if (chunk.length > 1 << 20) {
        yield chunk;
        chunk = '';
      }
    }
    if (chunk) yield chunk;
  }
  const t0 = performance.now();
  let copied = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      const c = createClient({ connectionString: db.url });
      await c.connect();
      for (let from = (next += COPY_CHUNK) - COPY_CHUNK; from < rows; from = (next += COPY_CHUNK) - COPY_CHUNK) {
        const to = Math.min(rows, from + COPY_CHUNK);
        await pipeline(Readable.from(lines(from, to)), c.query(copyFrom(USAGE_EVENTS_COPY_SQL)));
        copied += to - from;
        process.stderr.write(`\r  pre-filled ${copied} / ${rows} rows (${Math.round(copied / ((performance.now() - t0) / 1000))} rows/s)`);
      }
      await c.end();
    }),
  );
  process.stderr.write('\n');
  // What autovacuum would have done by now on a table that grew over a year.
  await admin.query('vacuum analyze usage_events');
  // And a year-old history was written to disk long ago: flush the pre-fill now, so the run on top
  // does not share the disk with a checkpoint writing out gigabytes it just loaded.
  await admin.query('checkpoint');
  const prefilled = await stored();
  console.log(
    `pre-filled ${prefilled} rows with COPY in ${((performance.now() - t0) / 1000).toFixed(0)} s (${writers} writers); HTTP ingest on top:`,
  );
  const grownRate = await httpRun(`on ${prefilled} rows`);
  const bytes = await bytesPerStoredEvent(admin);

  // The empty table once more, after: on a shared machine the load drifts during a long pre-fill,
  // so the baseline is the mean of a run before and a run after.
  await admin.query('truncate usage_events, usage_counters');
  const emptyAfter = await httpRun('empty table again');
  const baseline = (emptyRate + emptyAfter) / 2;

  server.kill('SIGTERM');
  await once(server, 'exit');
  console.log(`at ${prefilled} rows the API keeps ${((grownRate / baseline) * 100).toFixed(0)}% of its empty-table rate`);
  console.log(`bytes per stored event (table + indexes): ${bytes}`);
  await admin.end();
  await db.stop();
}
