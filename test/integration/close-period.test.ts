import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClosePeriod } from '../../src/activities/close-period';
import { createPlan } from '../../src/billing/plan-store';
import { createSubscription } from '../../src/billing/subscription-store';
import { planSchema } from '../../src/domain/plan';
import { defaultEventTimePolicy } from '../../src/domain/metering/event-time';
import { createCustomer } from '../../src/metering/customer-store';
import { createMetering } from '../../src/metering/metering';
import { createMeter } from '../../src/metering/meter-store';
import { createTestDatabase, type TestDatabase } from '../support/database';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db?.drop();
});

test('closing a period recomputes exact usage of [start, end) from raw events, once, however often it runs', async () => {
  const { customer } = await createCustomer(db.pool, { external_id: 'acme', name: 'Acme', currency: 'USD' });
  await createMeter(db.pool, { code: 'tokens', name: 'Tokens', event_type: 'tokens', aggregation: 'sum', value_property: 'tokens', filter: {} });
  await createMeter(db.pool, { code: 'api_calls', name: 'Calls', event_type: 'api_call', aggregation: 'count', filter: {} });
  const plan = planSchema({ knownMeters: new Set(['tokens', 'api_calls']) }).parse({
    id: 'pro',
    name: 'Pro',
    currency: 'USD',
    charges: [{ meter: 'tokens', model: 'per_unit', unit_price: '0.001' }],
    limits: [{ meter: 'api_calls', hard_limit: '1000', at_hard_limit: 'allow' }],
    interval: { kind: 'calendar_month' },
  });
  await createPlan(db.pool, plan, 'cli');
  const created = await createSubscription(db.pool, { customerId: customer.id, planCode: 'pro', anchor: new Date('2026-01-31T00:00:00Z'), actor: 'cli' });
  assert.ok(created.created);

  const admin = { keyId: 't', environment: 'test' as const, scopes: ['events:write' as const], customer: null };
  const events = [
    { id: 'before', customer: 'acme', type: 'tokens', timestamp: '2026-02-27T23:59:59.999Z', properties: { tokens: '1000' } },
    { id: 'first', customer: 'acme', type: 'tokens', timestamp: '2026-02-28T00:00:00Z', properties: { tokens: '0.1' } },
    { id: 'mid', customer: 'acme', type: 'tokens', timestamp: '2026-03-15T00:00:00Z', properties: { tokens: '0.2' } },
    { id: 'call', customer: 'acme', type: 'api_call', timestamp: '2026-03-01T00:00:00Z' },
    { id: 'end', customer: 'acme', type: 'tokens', timestamp: '2026-03-31T00:00:00Z', properties: { tokens: '5' } },
  ];
  const clock = { now: () => new Date('2026-03-31T00:00:30Z') };
  await createMetering({ pool: db.pool, clock, timePolicy: defaultEventTimePolicy }).ingest.ingest(events, admin, false);

  // Jan 31 anchor: the period after [Jan 31, Feb 28) is [Feb 28, Mar 31).
  const close = createClosePeriod({ pool: db.pool, clock });
  const input = { subscriptionId: created.subscription.id, customerId: customer.id, planCode: 'pro', periodStart: '2026-02-28T00:00:00.000Z', periodEnd: '2026-03-31T00:00:00.000Z' };
  await close(input);
  await close(input);
  const { rows } = await db.pool.query('select usage, plan_code from period_closes');
  assert.deepEqual(rows, [{ usage: { tokens: '0.3', api_calls: '1' }, plan_code: 'pro' }]);
});
