import type { Registry } from 'prom-client';
import type { Clock } from '../clock';
import { CustomerService } from '../customers/service';
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

/**
 * The ingest path assembled: the meter catalog in memory, customers (whose directory is in
 * memory too), the group-commit writer and the ingest service.
 */
export function createMetering(opts: MeteringOptions): {
  ingest: IngestService;
  catalog: MeterCatalog;
  customers: CustomerService;
} {
  const catalog = new MeterCatalog(opts.pool);
  const customers = new CustomerService(opts.pool);
  const writer = new IngestWriter(opts.pool, opts.writer, opts.registry);
  const ingest = new IngestService({
    writer,
    catalog,
    customers,
    clock: opts.clock,
    ...(opts.entitlements ? { entitlements: opts.entitlements } : {}),
    timePolicy: opts.timePolicy,
    ...(opts.onStored ? { onStored: opts.onStored } : {}),
  });
  return { ingest, catalog, customers };
}
