import type { RequestHandler } from 'express';
import { pino } from 'pino';
import { createApp } from '../../src/api/app';
import { scopes } from '../../src/api/auth';
import { createApiMetrics } from '../../src/api/metrics';
import { ProblemError } from '../../src/api/problem';
import { defaultEventTimePolicy } from '../../src/domain/metering/event-time';
import { createCustomer } from '../../src/metering/customer-store';
import { createMetering } from '../../src/metering/metering';
import { createMeter } from '../../src/metering/meter-store';
import { createTestDatabase, type TestDatabase } from './database';
import { listen } from './http';

export interface MeteringTestApp {
  url: string;
  db: TestDatabase;
  adminKey: string;
  seed(): Promise<void>;
  close(): Promise<void>;
}

const TEST_KEY = 'test-admin-key';

// TODO(issue 5): replace with a key issued by the real key store once it lands.
const acceptTestKey: RequestHandler = (req, _res, next) => {
  if (req.headers.authorization !== `Bearer ${TEST_KEY}`) throw new ProblemError('unauthenticated', 'bad key');
  req.principal = { keyId: 'test', environment: 'test', scopes, customer: null };
  next();
};

/** The real API (metering routes, real Postgres) with a controlled clock. */
export async function createMeteringTestApp(now: Date): Promise<MeteringTestApp> {
  const db = await createTestDatabase();
  const metrics = createApiMetrics();
  const metering = createMetering({ pool: db.pool, clock: { now: () => now }, timePolicy: defaultEventTimePolicy, registry: metrics.registry });
  const app = createApp({
    logger: pino({ level: 'silent' }),
    readiness: { postgres: () => db.pool.query('select 1') },
    authenticate: acceptTestKey,
    routers: metering.routers,
    metrics,
  });
  const server = await listen(app);
  return {
    url: server.url,
    db,
    adminKey: TEST_KEY,
    seed: async () => {
      for (const c of ['acme', 'globex']) await createCustomer(db.pool, { external_id: c, name: c, currency: 'USD' });
      await createMeter(db.pool, { code: 'tokens', name: 'Tokens', event_type: 'tokens', aggregation: 'sum', value_property: 'tokens', filter: {} });
      await createMeter(db.pool, { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} });
      await createMeter(db.pool, { code: 'gpu_seconds', name: 'GPU', event_type: 'compute', aggregation: 'sum', value_property: 'seconds', filter: { resource: 'gpu' } });
    },
    close: async () => {
      await server.close();
      await db.drop();
    },
  };
}
