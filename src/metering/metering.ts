import type { Registry } from 'prom-client';
import type { Clock } from '../clock';
import { CustomerDirectory } from '../customers/directory';
import type { Pool } from '../db/pool';
import type { EventTimePolicy } from '../domain/metering/event-time';
import type { EntitlementStore } from '../entitlements/store';
import { MeterCatalog } from '../meters/catalog';
import { IngestService, type IngestDeps } from './ingest';
import { IngestWriter, type IngestWriterOptions } from './ingest-writer';

export interface MeteringOptions {
  pool: Pool;
  clock: Clock;
  timePolicy: EventTimePolicy;
  writer?: IngestWriterOptions;
  /** Where the writer's metrics go (rows per commit, commit time, queue depth). */
  registry?: Registry;
  onStored?: IngestDeps['onStored'];
  entitlements?: EntitlementStore;
}

/** The ingest path assembled: meter catalog and customer directory in memory, group-commit writer, ingest service. */
export function createMetering(opts: MeteringOptions): {
  ingest: IngestService;
  catalog: MeterCatalog;
  directory: CustomerDirectory;
} {
  const catalog = new MeterCatalog(opts.pool);
  const directory = new CustomerDirectory(opts.pool);
  const writer = new IngestWriter(opts.pool, opts.writer, opts.registry);
  const ingest = new IngestService({
    writer,
    catalog,
    customers: directory,
    clock: opts.clock,
    ...(opts.entitlements ? { entitlements: opts.entitlements } : {}),
    timePolicy: opts.timePolicy,
    ...(opts.onStored ? { onStored: opts.onStored } : {}),
  });
  return { ingest, catalog, directory };
}
