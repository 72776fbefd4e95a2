import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { ensureDatabase, startEmbeddedPostgres, type RunningPostgres } from '../src/db/embedded';
import { migrate } from '../src/db/migrate';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface BenchDatabase {
  url: string;
  stop(): Promise<void>;
}

/**
 * A durable PostgreSQL (fsync on, the defaults) in a scratch directory, migrated: benchmarks
 * measure what production would get, not a tuned-for-speed test cluster.
 */
export async function startBenchDatabase(name: string): Promise<BenchDatabase> {
  const dataDir = path.resolve(import.meta.dirname, '..', '.data', `bench-${name}-${process.pid}`);
  rmSync(dataDir, { recursive: true, force: true });
  let pg: RunningPostgres | undefined;
  if (!process.env.DATABASE_URL) pg = await startEmbeddedPostgres({ dataDir, port: await freePort(), durability: 'full' });
  const url = await ensureDatabase(process.env.DATABASE_URL ?? pg!.url, `bench_${name}_${process.pid}`);
  await migrate(url);
  return {
    url,
    stop: async () => {
      await pg?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
