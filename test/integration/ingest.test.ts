import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import type { Principal } from '../../src/keys/principal';
import type { Clock } from '../../src/clock';
import { defaultEventTimePolicy } from '../../src/domain/metering/event-time';
import type { MeterInput } from '../../src/domain/metering/meter';
import { createCustomer } from '../../src/customers/store';
import { createMetering } from '../../src/metering/metering';
import type { IngestService } from '../../src/metering/ingest';
import { createMeter, getMeter } from '../../src/meters/store';
import { queryUsage } from '../../src/metering/usage-query';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { eventWriter as admin } from '../support/principals';

const NOW = new Date('2026-03-15T12:00:00.000Z');
const clock: Clock = { now: () => NOW };

const meters: MeterInput[] = [
  { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} },
  { code: 'tokens', name: 'Tokens', event_type: 'tokens', aggregation: 'sum', value_property: 'tokens', filter: {} },
  { code: 'peak_seats', name: 'Peak seats', event_type: 'seats', aggregation: 'max', value_property: 'seats', filter: {} },
  { code: 'active_users', name: 'Active users', event_type: 'login', aggregation: 'unique_count', value_property: 'user', filter: {} },
  { code: 'storage', name: 'Storage GB', event_type: 'storage', aggregation: 'latest', value_property: 'gb', filter: {} },
  {
    code: 'gpu_seconds',
    name: 'GPU seconds',
    event_type: 'compute',
    aggregation: 'sum',
    value_property: 'seconds',
    filter: { resource: 'gpu' },
  },
];

let db: TestDatabase;
let ingest: IngestService;

before(async () => {
  db = await createTestDatabase();
  for (const m of meters) await createMeter(db.pool, m, 'system');
  for (const c of ['acme', 'globex']) await createCustomer(db.pool, { external_id: c, name: c, currency: 'USD' }, 'system');
  ingest = createMetering({ pool: db.pool, clock, timePolicy: defaultEventTimePolicy, registry: metrics }).ingest;
});
after(async () => {
  await db?.drop();
});

const metrics = new Registry();
/** ingest_transactions_total by path, from the writer's metrics. */
async function transactionsByPath(): Promise<{ direct: number; staging: number }> {
  const { values } = await metrics.getSingleMetric('ingest_transactions_total')!.get();
  const of = (path: string) => values.find((v) => v.labels.path === path)?.value ?? 0;
  return { direct: of('direct'), staging: of('staging') };
}
const count = async (sql: string, params: unknown[] = []) => (await db.pool.query<{ n: string }>(sql, params)).rows[0]!.n;

describe('deduplication in the writing transaction', () => {
  beforeEach(async () => {
    await db.pool.query('truncate usage_events, usage_counters');
  });

  test('the same batch sent 3× concurrently is stored once and counted once', async () => {
    const batch = Array.from({ length: 500 }, (_, i) => ({
      id: `evt-${i}`,
      customer: i % 2 ? 'acme' : 'globex',
      type: 'tokens',
      timestamp: '2026-03-15T11:00:00Z',
      properties: { tokens: `${i}.5` },
    }));
    const results = await Promise.all([1, 2, 3].map(() => ingest.ingest(batch, admin, false)));
    const statuses = results.flatMap((r) => r.outcomes.map((o) => o.status));
    assert.equal(statuses.filter((s) => s === 'accepted').length, 500);
    assert.equal(statuses.filter((s) => s === 'duplicate').length, 1000);
    assert.equal(await count('select count(*)::text as n from usage_events'), '500');
    const { rows } = await db.pool.query<{ n: string; s: string }>(
      'select sum(event_count)::text as n, sum(value_sum)::text as s from usage_counters',
    );
    assert.equal(rows[0]!.n, '500');
    // Σ (i + 0.5) for i < 500 = 124750 + 250
    assert.equal(rows[0]!.s, '125000.0');
  });

  test('two API processes storing the same new events at once, in opposite orders: stored and counted once', async () => {
    // Each process has its own writer, so the two batches meet in PostgreSQL, not in one group:
    // both COPY in key order, so one waits on the other's first shared key, then falls back.
    const other = createMetering({ pool: db.pool, clock, timePolicy: defaultEventTimePolicy }).ingest;
    const batch = Array.from({ length: 400 }, (_, i) => ({
      id: `twice-${i}`,
      customer: i % 2 ? 'acme' : 'globex',
      type: 'tokens',
      timestamp: '2026-03-15T11:00:00Z',
      properties: { tokens: '1' },
    }));
    const results = await Promise.all([ingest.ingest(batch, admin, false), other.ingest([...batch].reverse(), admin, false)]);
    const statuses = results.flatMap((r) => r.outcomes.map((o) => o.status));
    assert.equal(statuses.filter((s) => s === 'accepted').length, 400);
    assert.equal(statuses.filter((s) => s === 'duplicate').length, 400);
    assert.equal(await count('select count(*)::text as n from usage_events'), '400');
    assert.equal(await count('select sum(event_count)::text as n from usage_counters'), '400');
    assert.equal(await count('select sum(value_sum)::text as n from usage_counters'), '400');
  });

  test('same id with another payload is a conflict; key order alone is not a difference', async () => {
    const first = { id: 'x', customer: 'acme', type: 'seats', properties: { seats: 3, region: 'eu' } };
    assert.equal((await ingest.ingest([first], admin, false)).outcomes[0]!.status, 'accepted');
    const reordered = { id: 'x', customer: 'acme', type: 'seats', properties: { region: 'eu', seats: 3 } };
    assert.equal((await ingest.ingest([reordered], admin, false)).outcomes[0]!.status, 'duplicate');
    const changed = { ...first, properties: { seats: 4, region: 'eu' } };
    const o = (await ingest.ingest([changed], admin, false)).outcomes[0]!;
    assert.equal(o.status, 'conflict');
    assert.equal(o.reason, 'id_reused');
    assert.equal(await count("select value::text as n from usage_events where event_id = 'x'"), '3');
  });

  test('a retry without a timestamp is a duplicate even though the server filled in the time', async () => {
    const e = { id: 'no-ts', customer: 'acme', type: 'api_call' };
    assert.equal((await ingest.ingest([e], admin, false)).outcomes[0]!.status, 'accepted');
    assert.equal((await ingest.ingest([e], admin, false)).outcomes[0]!.status, 'duplicate');
  });

  test('repeats inside one batch: first stored, same payload duplicate, other payload conflict', async () => {
    const e = { id: 'r', customer: 'acme', type: 'tokens', properties: { tokens: '1' } };
    const r = await ingest.ingest([e, e, { ...e, properties: { tokens: '2' } }], admin, false);
    assert.deepEqual(
      r.outcomes.map((o) => o.status),
      ['accepted', 'duplicate', 'conflict'],
    );
    assert.equal(await count('select sum(value_sum)::text as n from usage_counters'), '1');
  });

  test('a batch mixing stored and new events stores and counts only the new ones, atomic or not', async () => {
    const tokens = (id: string, t: string) => ({
      id,
      customer: 'acme',
      type: 'tokens',
      timestamp: '2026-03-15T11:00:00Z',
      properties: { tokens: t },
    });
    const pathsBefore = await transactionsByPath();
    await ingest.ingest([tokens('m1', '1.5'), tokens('m2', '2')], admin, false);
    const mixed = await ingest.ingest([tokens('m1', '1.5'), tokens('m3', '4'), tokens('m2', '9')], admin, false);
    assert.deepEqual(
      mixed.outcomes.map((o) => o.status),
      ['duplicate', 'accepted', 'conflict'],
    );
    const atomic = await ingest.ingest([tokens('m3', '4'), tokens('m4', '0.25')], admin, true);
    assert.equal(atomic.rolledBack, false);
    assert.deepEqual(
      atomic.outcomes.map((o) => o.status),
      ['duplicate', 'accepted'],
    );
    const { rows } = await db.pool.query<{ n: string; s: string }>(
      'select event_count::text as n, value_sum::text as s from usage_counters',
    );
    assert.deepEqual(rows, [{ n: '4', s: '7.75' }]);
    // The first batch took the direct path; both batches holding stored keys, the staging path.
    const pathsAfter = await transactionsByPath();
    assert.deepEqual([pathsAfter.direct - pathsBefore.direct, pathsAfter.staging - pathsBefore.staging], [1, 2]);
  });

  test('the same id for two customers is two events', async () => {
    const r = await ingest.ingest(
      [
        { id: 'shared', customer: 'acme', type: 'api_call' },
        { id: 'shared', customer: 'globex', type: 'api_call' },
      ],
      admin,
      false,
    );
    assert.deepEqual(
      r.outcomes.map((o) => o.status),
      ['accepted', 'accepted'],
    );
  });
});

describe('ids and properties stored exactly as sent', () => {
  beforeEach(async () => {
    await db.pool.query('truncate usage_events, usage_counters');
  });

  // The writer hands rows to PostgreSQL as COPY text: tab, newline, carriage return and backslash
  // are its delimiters and escapes, and \N its null; none may change what is stored or matched.
  // Ids also reach the counters as array-literal elements, where quotes, braces, commas, spaces
  // and NULL mean something.
  const awkward = [
    'tab\there',
    'new\nline',
    'cr\rhere',
    'back\\slash',
    '\\N',
    '\\',
    'quote"\'',
    'ünï😀',
    '\\t\t\\n',
    'NULL',
    '{"a",b}',
    ' padded ',
  ];

  test('ids and property text with COPY delimiters and escapes round-trip, and dedup on them', async () => {
    const batch = awkward.map((text, i) => ({
      id: text,
      customer: 'acme',
      type: 'login',
      timestamp: '2026-03-15T11:00:00Z',
      properties: { user: text, [text]: i, nested: { list: [text, null, '\\N'] } },
    }));
    const first = await ingest.ingest(batch, admin, false);
    assert.deepEqual(
      first.outcomes.map((o) => [o.id, o.status]),
      awkward.map((text) => [text, 'accepted']),
    );
    const { rows } = await db.pool.query<{ event_id: string; properties: unknown }>('select event_id, properties from usage_events');
    assert.deepEqual(new Map(rows.map((r) => [r.event_id, r.properties])), new Map(batch.map((e) => [e.id, e.properties])));
    const again = await ingest.ingest(
      batch.map((e, i) => (i % 2 ? e : { ...e, properties: { ...e.properties, user: `${e.properties.user}\t` } })),
      admin,
      false,
    );
    assert.deepEqual(
      again.outcomes.map((o) => o.status),
      awkward.map((_, i) => (i % 2 ? 'duplicate' : 'conflict')),
    );
    assert.equal(await count('select sum(event_count)::text as n from usage_counters'), String(awkward.length));
  });
});

describe('referential integrity without per-row foreign keys', () => {
  test('customers and meters cannot be deleted or re-keyed', async () => {
    await assert.rejects(db.pool.query("delete from customers where external_id = 'acme'"), /cannot be deleted/);
    await assert.rejects(db.pool.query("update meters set id = gen_random_uuid() where code = 'tokens'"), /cannot be deleted or change id/);
    // usage_events refers to them by short_id: `set short_id = default` would draw a new one from the identity.
    await assert.rejects(
      db.pool.query("update customers set short_id = default where external_id = 'acme'"),
      /cannot be deleted or change id/,
    );
    await assert.rejects(db.pool.query("update meters set short_id = default where code = 'tokens'"), /cannot be deleted or change id/);
    await db.pool.query("update customers set name = 'Acme Corp' where external_id = 'acme'");
  });
});

describe('event time', () => {
  test('an event beyond the allowed future skew is rejected with the reason; nothing stored', async () => {
    const ahead = new Date(NOW.getTime() + 5 * 60_000 + 1000).toISOString();
    const r = await ingest.ingest([{ id: 'future', customer: 'acme', type: 'api_call', timestamp: ahead }], admin, false);
    assert.equal(r.outcomes[0]!.status, 'rejected');
    assert.equal(r.outcomes[0]!.reason, 'timestamp_in_future');
    assert.equal(await count("select count(*)::text as n from usage_events where event_id = 'future'"), '0');
  });

  test('an event within the skew is accepted; an old one is accepted and flagged late', async () => {
    const nearFuture = new Date(NOW.getTime() + 4 * 60_000).toISOString();
    const old = '2026-02-01T00:00:00+02:00';
    const r = await ingest.ingest(
      [
        { id: 'soon', customer: 'acme', type: 'api_call', timestamp: nearFuture },
        { id: 'old', customer: 'acme', type: 'api_call', timestamp: old },
      ],
      admin,
      false,
    );
    assert.deepEqual(
      r.outcomes.map((o) => [o.status, o.late ?? false]),
      [
        ['accepted', false],
        ['accepted', true],
      ],
    );
    const { rows } = await db.pool.query<{ late: boolean; event_time: Date }>(
      "select late, event_time from usage_events where event_id = 'old'",
    );
    assert.equal(rows[0]!.late, true);
    assert.equal(rows[0]!.event_time.toISOString(), '2026-01-31T22:00:00.000Z');
  });
});

describe('atomic batches', () => {
  test('one bad event rolls back the whole batch; without atomic the good ones are stored', async () => {
    const good = { id: 'atomic-good', customer: 'acme', type: 'api_call' };
    const bad = { id: 'atomic-bad', customer: 'nobody', type: 'api_call' };
    const atomic = await ingest.ingest([good, bad], admin, true);
    assert.equal(atomic.rolledBack, true);
    assert.deepEqual(
      atomic.outcomes.map((o) => o.reason),
      ['batch_rolled_back', 'unknown_customer'],
    );
    assert.equal(await count("select count(*)::text as n from usage_events where event_id like 'atomic-%'"), '0');
    const lenient = await ingest.ingest([good, bad], admin, false);
    assert.deepEqual(
      lenient.outcomes.map((o) => o.status),
      ['accepted', 'rejected'],
    );
    assert.equal(await count("select count(*)::text as n from usage_events where event_id like 'atomic-%'"), '1');
  });
});

describe('aggregations equal a direct recomputation from the events', () => {
  test('counters and usage queries match SQL and an independent computation over random events', async () => {
    await db.pool.query('truncate usage_events, usage_counters');
    const day0 = Date.parse('2026-03-10T00:00:00Z');
    const eventArb = fc.record({
      customer: fc.constantFrom('acme', 'globex'),
      kind: fc.constantFrom('api_call', 'tokens', 'seats', 'login', 'storage'),
      offsetMs: fc.integer({ min: 0, max: 4 * 86_400_000 }),
      amount: fc.tuple(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 999 })),
      user: fc.constantFrom('u1', 'u2', 'u3', 'u4', 'u5'),
    });
    const sample = fc.sample(fc.array(eventArb, { minLength: 300, maxLength: 300 }), { numRuns: 1, seed: 42 })[0]!;
    const events = sample.map((e, i) => {
      const value = `${e.amount[0]}.${String(e.amount[1]).padStart(3, '0')}`;
      const properties: Record<string, unknown> =
        e.kind === 'tokens'
          ? { tokens: value }
          : e.kind === 'seats'
            ? { seats: value }
            : e.kind === 'login'
              ? { user: e.user }
              : e.kind === 'storage'
                ? { gb: value }
                : {};
      return { id: `rnd-${i}`, customer: e.customer, type: e.kind, timestamp: new Date(day0 + e.offsetMs).toISOString(), properties };
    });
    // Several concurrent requests, so counters are built by several transactions.
    const chunks = [0, 1, 2, 3].map((k) => events.slice(k * 75, (k + 1) * 75));
    await Promise.all(chunks.map((c) => ingest.ingest(c, admin, false)));

    const { rows: mismatches } = await db.pool.query(`
      select c.customer_id, c.meter_id, c.day from usage_counters c
      join lateral (
        select count(*) as n, coalesce(sum(value), 0) as s
          from usage_events e
         where e.customer_short_id = (select short_id from customers where id = c.customer_id)
           and e.meter_short_id = (select short_id from meters where id = c.meter_id) and (e.event_time at time zone 'UTC')::date = c.day
      ) r on true
      where r.n <> c.event_count or r.s::text <> c.value_sum::text`);
    assert.deepEqual(mismatches, []);
    assert.equal(await count('select sum(event_count)::text as n from usage_counters'), '300');

    // Usage from the API's query path against a computation in plain TypeScript (BigInt thousandths).
    const from = new Date('2026-03-11T00:00:00Z');
    const to = new Date('2026-03-13T00:00:00Z');
    const customerId = (await db.pool.query<{ id: string }>("select id from customers where external_id = 'acme'")).rows[0]!.id;
    const inRange = events.filter(
      (e) => e.customer === 'acme' && Date.parse(e.timestamp) >= from.getTime() && Date.parse(e.timestamp) < to.getTime(),
    );
    const thousandths = (v: unknown) => BigInt(String(v).replace('.', ''));
    const fmt = (n: bigint) => `${n / 1000n}.${String(n % 1000n).padStart(3, '0')}`;
    const ofType = (t: string) => inRange.filter((e) => e.type === t);
    const latest = ofType('storage').sort((a, b) => Date.parse(b.timestamp) - Date.parse(a.timestamp) || (b.id < a.id ? -1 : 1))[0];
    const expected: Record<string, string | null> = {
      api_calls: String(ofType('api_call').length),
      tokens: fmt(ofType('tokens').reduce((s, e) => s + thousandths(e.properties.tokens), 0n)),
      peak_seats: ofType('seats').length
        ? fmt(ofType('seats').reduce((m, e) => (thousandths(e.properties.seats) > m ? thousandths(e.properties.seats) : m), 0n))
        : null,
      active_users: String(new Set(ofType('login').map((e) => e.properties.user)).size),
      storage: latest ? fmt(thousandths(latest.properties.gb)) : null,
    };
    for (const [code, value] of Object.entries(expected)) {
      const meter = (await getMeter(db.pool, code))!;
      const usage = await queryUsage(db.pool, { customerId, meter, from, to, granularity: 'day' });
      assert.equal(usage.value, value, code);
      assert.equal(usage.buckets!.length, 2, code);
      if (meter.aggregation === 'count' || meter.aggregation === 'sum') {
        const summed = usage.buckets!.reduce((s, b) => s + thousandths(b.value!.includes('.') ? b.value : `${b.value}.000`), 0n);
        assert.equal(summed, thousandths(value!.includes('.') ? value : `${value}.000`), `${code} buckets add up`);
      }
    }
  });
});

describe('values and filters', () => {
  test('NaN, Infinity, exponents, negatives and non-numbers are rejected for value meters', async () => {
    const bad: unknown[] = ['NaN', 'Infinity', '1e3', '-1', 'abc', '', true, { v: 1 }, '1.5.5', ' 1'];
    const r = await ingest.ingest(
      bad.map((tokens, i) => ({ id: `bad-${i}`, customer: 'acme', type: 'tokens', properties: { tokens } })),
      admin,
      false,
    );
    for (const o of r.outcomes) assert.equal(o.status, 'rejected', JSON.stringify(o));
    assert.equal(await count("select count(*)::text as n from usage_events where event_id like 'bad-%'"), '0');
  });

  test('exact decimals survive: 0.1 + 0.2 is 0.3, and 20 fractional digits are kept', async () => {
    await db.pool.query('truncate usage_events, usage_counters');
    await ingest.ingest(
      [
        { id: 'a', customer: 'acme', type: 'tokens', timestamp: '2026-03-15T00:00:01Z', properties: { tokens: 0.1 } },
        { id: 'b', customer: 'acme', type: 'tokens', timestamp: '2026-03-15T00:00:02Z', properties: { tokens: '0.2' } },
        {
          id: 'c',
          customer: 'acme',
          type: 'tokens',
          timestamp: '2026-03-15T00:00:03Z',
          properties: { tokens: '123456789012345678901234567890.00000000000000000001' },
        },
      ],
      admin,
      false,
    );
    assert.equal(await count('select value_sum::text as n from usage_counters'), '123456789012345678901234567890.30000000000000000001');
  });

  test('events outside the meter filter are rejected with a reason, not dropped silently', async () => {
    const r = await ingest.ingest(
      [
        { id: 'gpu', customer: 'acme', type: 'compute', properties: { resource: 'gpu', seconds: 10 } },
        { id: 'cpu', customer: 'acme', type: 'compute', properties: { resource: 'cpu', seconds: 10 } },
      ],
      admin,
      false,
    );
    assert.deepEqual(
      r.outcomes.map((o) => o.reason ?? o.status),
      ['accepted', 'filtered_out'],
    );
  });

  test('a customer-restricted principal writes only its own customer', async () => {
    const acmeOnly: Principal = { ...admin, customer: { id: 'ignored', externalId: 'acme' } };
    const r = await ingest.ingest(
      [
        { id: 'own', type: 'api_call' },
        { id: 'other', customer: 'globex', type: 'api_call' },
      ],
      acmeOnly,
      false,
    );
    assert.deepEqual(
      r.outcomes.map((o) => o.reason ?? o.status),
      ['accepted', 'unknown_customer'],
    );
  });
});
