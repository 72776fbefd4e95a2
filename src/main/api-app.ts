import type { Express } from 'express';
import type { Logger } from 'pino';
import { createApp } from '../api/app';
import { createApiMetrics } from '../api/metrics';
import type { ReadinessCheck } from '../api/routes/health';
import { plansRouter } from '../api/routes/plans';
import { pricingRouter } from '../api/routes/pricing';
import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import type { EventTimePolicy } from '../domain/metering/event-time';
import type { Keys } from '../keys/keys';
import { createMetering } from '../metering/metering';

export interface ApiAppDeps {
  pool: Pool;
  keys: Keys;
  clock: Clock;
  logger: Logger;
  readiness: Record<string, ReadinessCheck>;
  timePolicy: EventTimePolicy;
}

/** The whole API as every entry point, test and benchmark runs it: one composition, one place. */
export function buildApiApp(deps: ApiAppDeps): Express {
  const metrics = createApiMetrics();
  const metering = createMetering({ pool: deps.pool, clock: deps.clock, timePolicy: deps.timePolicy, registry: metrics.registry });
  return createApp({
    logger: deps.logger,
    readiness: deps.readiness,
    authenticate: deps.keys.authenticate,
    routers: [...metering.routers, pricingRouter, plansRouter({ pool: deps.pool }), deps.keys.router],
    metrics,
  });
}
