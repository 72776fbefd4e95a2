import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { createReadUsageTotals } from '../../src/activities/read-usage-totals';
import { createCustomer } from '../../src/customers/store';
import { IngestWriter, type PreparedEvent } from '../../src/metering/ingest-writer';
import { readUsageTotals } from '../../src/metering/usage-totals';
import { createMeter } from '../../src/meters/store';
import { createTestDatabase, type TestDatabase } from '../support/database';

/*
 * The totals the billing workflow takes as the truth for quotas: full UTC days from the real-time
 * counters, partial days at the edges from the events, for a period anchored at any instant.
 * Events are stored through the real ingest writer, which keeps the counters.
 */
let db: TestDatabase;
let customerId: string;
let meters: Record<'calls' | 'tokens' | 'peak', string>;

before(async () => {
  db = await createTestDatabase();
  customerId = (await createCustomer(db.pool, { external_id: 'acme', name: 'Acme', currency: 'USD' }, 'system')).customer.id;
  const meter = async (code: string, aggregation: 'count' | 'sum' | 'max') =>
    (
      await createMeter(
        db.pool,
        { code, name: code, event_type: code, aggregation, filter: {}, ...(aggregation === 'count' ? {} : { value_property: 'v' }) },
        'system',
      )
    ).meter.id;
  meters = { calls: await meter('calls', 'count'), tokens: await meter('tokens', 'sum'), peak: await meter('peak', 'max') };
});
after(async () => {
  await db?.drop();
});

let seq = 0;
async function store(meter: keyof typeof meters, times: string[], value: string | null = null): Promise<void> {
  const writer = new IngestWriter(db.pool);
  const events: PreparedEvent[] = times.map((t) => ({
    customer: 'acme',
    customerId,
    eventId: `e-${++seq}`,
    meterId: meters[meter],
    eventTime: new Date(t).toISOString(),
    receivedAt: new Date().toISOString(),
    value,
    properties: '{}',
    timestampProvided: true,
    late: false,
  }));
  const { outcomes } = await writer.write(events);
  assert.ok(outcomes.every((o) => o.status === 'accepted'));
}

/** The oracle: the same totals straight from every event. */
async function fromEvents(start: string, end: string): Promise<Record<string, string>> {
  const { rows } = await db.pool.query<{ code: string; total: string }>(
    `select m.code, case m.aggregation when 'count' then count(e.*)::text else coalesce(sum(e.value), 0)::text end as total
       from meters m left join usage_events e on e.meter_short_id = m.short_id and e.customer_short_id = (select short_id from customers where id = $1::uuid) and e.event_time >= $2 and e.event_time < $3
      where m.aggregation in ('count', 'sum') group by m.code, m.aggregation`,
    [customerId, start, end],
  );
  return Object.fromEntries(rows.map((r) => [r.code, r.total]));
}

const totals = (start: string, end: string) =>
  readUsageTotals(db.pool, {
    customerId,
    meters: ['calls', 'tokens', 'peak', 'no-such-meter'],
    start: new Date(start),
    end: new Date(end),
  });

describe('usage totals of a period', () => {
  // A monthly period anchored at 13:30:00 UTC: two partial days and 30 full ones.
  const start = '2026-03-10T13:30:00.000Z';
  const end = '2026-04-10T13:30:00.000Z';

  test('a non-midnight anchor: the edges to the millisecond, full days from the counters, half-open', async () => {
    await store('calls', [
      '2026-03-10T13:29:59.999Z', // before the period, same day: not counted
      '2026-03-10T13:30:00.000Z', // the start: counted
      '2026-03-10T23:59:59.999Z',
      '2026-03-11T00:00:00.000Z', // first full day
      '2026-03-25T12:00:00.000Z',
      '2026-04-09T23:59:59.999Z', // last full day
      '2026-04-10T00:00:00.000Z', // the last, partial day
      '2026-04-10T13:29:59.999Z',
      '2026-04-10T13:30:00.000Z', // the end: the next period's
      '2026-03-09T12:00:00.000Z', // days outside the period
      '2026-04-11T12:00:00.000Z',
    ]);
    await store('tokens', ['2026-03-10T13:29:00.000Z', '2026-04-10T13:31:00.000Z'], '1000');
    await store('tokens', ['2026-03-10T13:30:00.000Z', '2026-04-10T13:29:00.000Z'], '0.1');
    await store('tokens', ['2026-03-20T00:00:00.000Z'], '12345678901234567890.00000000000000000001');
    await store('peak', ['2026-03-20T00:00:00.000Z'], '7');

    const got = await totals(start, end);
    assert.deepEqual(got, { calls: '7', tokens: '12345678901234567890.20000000000000000001' });
    assert.deepEqual(got, await fromEvents(start, end));
    // The counters are really read for the full days: a counter changed behind the events' back shows.
    await db.pool.query(`update usage_counters set event_count = event_count + 100 where meter_id = $1 and day = '2026-03-25'`, [
      meters.calls,
    ]);
    assert.equal((await totals(start, end)).calls, '107');
    await db.pool.query(`update usage_counters set event_count = event_count - 100 where meter_id = $1 and day = '2026-03-25'`, [
      meters.calls,
    ]);
  });

  test('periods within one day, across one midnight, and at midnight anchors agree with the events', async () => {
    for (const [from, to] of [
      ['2026-03-10T13:30:00.000Z', '2026-03-10T23:59:59.999Z'],
      ['2026-03-10T13:30:00.000Z', '2026-03-11T00:00:00.000Z'],
      ['2026-03-10T23:00:00.000Z', '2026-03-11T01:00:00.000Z'],
      ['2026-03-11T00:00:00.000Z', '2026-04-10T00:00:00.000Z'],
      ['2026-04-10T13:30:00.000Z', '2026-05-10T13:30:00.000Z'],
      ['2026-03-10T13:30:00.000Z', '2026-03-10T13:30:00.000Z'],
    ] as const) {
      assert.deepEqual(await totals(from, to), await fromEvents(from, to), `[${from}, ${to})`);
    }
  });

  test('the activity fails for good on input no retry can mend: a customer id that is no UUID, a period that is not two timestamps', async () => {
    const read = createReadUsageTotals({ pool: db.pool });
    const meters = [{ code: 'calls' }];
    for (const input of [
      { customerId: 'acme', meters, periodStart: start, periodEnd: end },
      { customerId, meters, periodStart: 'yesterday', periodEnd: end },
    ]) {
      await assert.rejects(
        read(input),
        (err) => err instanceof ApplicationFailure && err.nonRetryable && err.type === 'invalid_input',
        JSON.stringify(input),
      );
    }
  });

  test('the activity: meters by code, periods as ISO strings', async () => {
    const read = createReadUsageTotals({ pool: db.pool });
    assert.deepEqual(await read({ customerId, meters: [{ code: 'calls' }, { code: 'peak' }], periodStart: start, periodEnd: end }), {
      calls: '7',
    });
  });
});
