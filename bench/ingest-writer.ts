/**
 * `npm run bench:ingest:writer`: the group-commit writer alone, without HTTP, JSON or validation:
 * events/s into a durable PostgreSQL (fsync on) and CPU per stored event of PostgreSQL and of the
 * writer's process. The HTTP bench's figures swing with the VM by a third from run to run; this
 * one measures the part a writer change moves, with much less around it, so that such a change
 * can be judged in runs interleaved with the previous version.
 *
 * Load as `bench:ingest` offers it: BENCH_CONNECTIONS (8) clients each writing batches of
 * BENCH_BATCH (1000) events, one after the other, to the writer's production options; BENCH_ROWS
 * (600,000) events in all, BENCH_CUSTOMERS (100), one timestamp. The events are built before the clock starts.
 */
import { createClient, createPool } from '../src/db/pool';
import { IngestWriter, type PreparedEvent } from '../src/metering/ingest-writer';
import { postgresCpuSeconds } from './cpu';
import { seedTokensCatalog, startBenchDatabase } from './support';

const rows = Number(process.env.BENCH_ROWS ?? 600_000);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 8);
const batchSize = Number(process.env.BENCH_BATCH ?? 1000);
const customers = Number(process.env.BENCH_CUSTOMERS ?? 100);

const db = await startBenchDatabase('ingest-writer');
const admin = createClient({ connectionString: db.url });
await admin.connect();
const { meterId, customerIds } = await seedTokensCatalog(admin, customers);

const timestamp = new Date().toISOString();
const batches: PreparedEvent[][] = [];
for (let i = 0; i < rows; i += batchSize) {
  const batch: PreparedEvent[] = [];
  for (let j = i; j < Math.min(i + batchSize, rows); j++) {
    const tokens = String((j % 997) + 0.25);
    batch.push({
      customer: `cust-${j % customers}`,
      customerId: customerIds[j % customers]!,
      eventId: `evt-${j}`,
      meterId,
      eventTime: timestamp,
      receivedAt: timestamp,
      value: tokens,
      properties: `{"tokens":"${tokens}","model":"small"}`,
      timestampProvided: true,
      late: false,
    });
  }
  batches.push(batch);
}

const pool = createPool(db.url, 10);
const writer = new IngestWriter(pool);
let next = 0;
const postgresBefore = await postgresCpuSeconds(admin);
const processBefore = process.cpuUsage();
const started = performance.now();
await Promise.all(
  Array.from({ length: connections }, async () => {
    while (next < batches.length) await writer.write(batches[next++]!);
  }),
);
const seconds = (performance.now() - started) / 1000;
const used = process.cpuUsage(processBefore);
const postgres = (await postgresCpuSeconds(admin)) - postgresBefore;
const stored = Number((await admin.query<{ n: string }>('select count(*)::text as n from usage_events')).rows[0]!.n);
const counted = Number((await admin.query<{ n: string }>('select sum(event_count)::text as n from usage_counters')).rows[0]!.n);
const micros = (s: number) => ((s / rows) * 1e6).toFixed(2);

console.log(`writer alone: ${connections} clients × batches of ${batchSize}, ${rows} events, ${customers} customers, fsync on`);
console.log(`  ${Math.round(rows / seconds)} events/s`);
console.log(`  CPU per stored event: PostgreSQL ${micros(postgres)} µs, writer process ${micros((used.user + used.system) / 1e6)} µs`);

await pool.end();
await admin.end();
await db.stop();
if (stored !== rows || counted !== rows) {
  console.error(`FAILED: ${rows} written, ${stored} stored, ${counted} counted`);
  process.exit(1);
}
