import { scopes } from '../../src/keys/principal';
import { createCustomer } from '../../src/customers/store';
import { createMeter } from '../../src/meters/store';
import { createTestDatabase, type TestDatabase } from './database';
import { ManualClock, startKeysApp } from './keys-app';

export interface MeteringTestApp {
  url: string;
  db: TestDatabase;
  /** A real API key with every scope, unrestricted, issued through the key service. */
  adminKey: string;
  seed(): Promise<void>;
  close(): Promise<void>;
}

/** The real API (all routers, real key verification, real Postgres) with its clock held at `now`. */
export async function createMeteringTestApp(now: Date): Promise<MeteringTestApp> {
  const db = await createTestDatabase();
  const app = await startKeysApp(db, { clock: new ManualClock(now) });
  const { secret } = await app.issue({ scopes: [...scopes] });
  return {
    url: app.url,
    db,
    adminKey: secret,
    seed: async () => {
      for (const c of ['acme', 'globex']) await createCustomer(db.pool, { external_id: c, name: c, currency: 'USD' }, 'system');
      await createMeter(
        db.pool,
        { code: 'tokens', name: 'Tokens', event_type: 'tokens', aggregation: 'sum', value_property: 'tokens', filter: {} },
        'system',
      );
      await createMeter(
        db.pool,
        { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} },
        'system',
      );
      await createMeter(
        db.pool,
        {
          code: 'gpu_seconds',
          name: 'GPU',
          event_type: 'compute',
          aggregation: 'sum',
          value_property: 'seconds',
          filter: { resource: 'gpu' },
        },
        'system',
      );
    },
    close: async () => {
      await app.close();
      await db.drop();
    },
  };
}
