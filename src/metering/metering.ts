import type { Router } from 'express';
import type { Registry } from 'prom-client';
import { customersRouter } from '../api/routes/customers';
import { eventsRouter } from '../api/routes/events';
import { metersRouter } from '../api/routes/meters';
import { usageRouter } from '../api/routes/usage';
import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import type { EventTimePolicy } from '../domain/metering/event-time';
import type { EntitlementStore } from '../entitlements/store';
import { CustomerDirectory } from '../customers/directory';
import { IngestService, type IngestDeps } from './ingest';
import { IngestWriter, type IngestWriterOptions } from './ingest-writer';
import { MeterCatalog } from './meter-catalog';

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

/** The metering chapter assembled: catalog cache, group-commit writer, ingest service and its routes. */
export function createMetering(opts: MeteringOptions): {
  ingest: IngestService;
  catalog: MeterCatalog;
  customers: CustomerDirectory;
  routers: Router[];
} {
  const catalog = new MeterCatalog(opts.pool);
  const customers = new CustomerDirectory(opts.pool);
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
  return {
    ingest,
    catalog,
    customers,
    routers: [
      customersRouter(opts.pool, customers),
      metersRouter(opts.pool, catalog),
      eventsRouter(ingest, opts.clock),
      usageRouter(opts.pool),
    ],
  };
}
