import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { billedPeriodContaining, nextBilledPeriod, type BillingSchedule } from '../../src/domain/billing-schedule';
import { nextPeriod, periodContaining, type Period } from '../../src/domain/periods';
import type { BillingInterval } from '../../src/domain/periods-schema';

const monthly: BillingInterval = { kind: 'calendar_month' };
const every = (iso: string): BillingInterval => ({ kind: 'duration', iso });
const at = (iso: string) => new Date(iso);
const iso = (p: Period) => [p.start.toISOString(), p.end.toISOString()];

/** The first `n` billed periods, walked with nextBilledPeriod from the one holding the start. */
function billed(schedule: BillingSchedule, n: number): string[][] {
  let p = billedPeriodContaining(schedule, schedule.start);
  const out = [iso(p)];
  for (let i = 1; i < n; i++) out.push(iso((p = nextBilledPeriod(schedule, p))));
  return out;
}

describe('billing schedule: periods from the billing anchor, billing from the start', () => {
  const cases: { name: string; schedule: BillingSchedule; periods: string[][] }[] = [
    {
      name: 'subscribed on the 17th, billed on the 1st: a first period cut at the start, then whole months',
      schedule: { start: at('2026-01-17T09:30:00Z'), billingAnchor: at('2025-12-01T00:00:00Z'), interval: monthly },
      periods: [
        ['2026-01-17T09:30:00.000Z', '2026-02-01T00:00:00.000Z'],
        ['2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z'],
        ['2026-03-01T00:00:00.000Z', '2026-04-01T00:00:00.000Z'],
      ],
    },
    {
      name: 'a billing anchor after the start works the same (its schedule extends backwards)',
      schedule: { start: at('2026-01-17T00:00:00Z'), billingAnchor: at('2026-06-01T00:00:00Z'), interval: monthly },
      periods: [
        ['2026-01-17T00:00:00.000Z', '2026-02-01T00:00:00.000Z'],
        ['2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z'],
      ],
    },
    {
      name: 'a start on a boundary of the anchor: whole periods from the first',
      schedule: { start: at('2026-02-01T00:00:00Z'), billingAnchor: at('2026-01-01T00:00:00Z'), interval: monthly },
      periods: [
        ['2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z'],
        ['2026-03-01T00:00:00.000Z', '2026-04-01T00:00:00.000Z'],
      ],
    },
    {
      name: '30-day periods, subscribed on day 10: [day 10, day 30), then 30 days',
      schedule: { start: at('2026-01-11T00:00:00Z'), billingAnchor: at('2026-01-01T00:00:00Z'), interval: every('P30D') },
      periods: [
        ['2026-01-11T00:00:00.000Z', '2026-01-31T00:00:00.000Z'],
        ['2026-01-31T00:00:00.000Z', '2026-03-02T00:00:00.000Z'],
      ],
    },
    {
      name: 'one millisecond before a boundary: a first period of one millisecond',
      schedule: { start: at('2026-01-31T23:59:59.999Z'), billingAnchor: at('2026-01-01T00:00:00Z'), interval: monthly },
      periods: [
        ['2026-01-31T23:59:59.999Z', '2026-02-01T00:00:00.000Z'],
        ['2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z'],
      ],
    },
  ];
  for (const c of cases) {
    test(c.name, () => assert.deepEqual(billed(c.schedule, c.periods.length), c.periods));
  }

  test('later instants are in whole periods of the anchor; the start cuts only the period holding it', () => {
    const schedule = { start: at('2026-01-17T00:00:00Z'), billingAnchor: at('2026-01-01T00:00:00Z'), interval: monthly };
    assert.deepEqual(iso(billedPeriodContaining(schedule, at('2026-01-31T23:59:59.999Z'))), [
      '2026-01-17T00:00:00.000Z',
      '2026-02-01T00:00:00.000Z',
    ]);
    assert.deepEqual(iso(billedPeriodContaining(schedule, at('2026-02-01T00:00:00Z'))), [
      '2026-02-01T00:00:00.000Z',
      '2026-03-01T00:00:00.000Z',
    ]);
  });

  test('with the start as the anchor (no billing anchor given) it is periods.ts exactly', () => {
    for (const [anchor, interval] of [
      [at('2026-01-31T10:00:00Z'), monthly],
      [at('2026-01-17T09:30:00Z'), every('PT5M')],
    ] as const) {
      const schedule = { start: anchor, billingAnchor: anchor, interval };
      for (const instant of [anchor, at('2026-03-01T00:00:00Z'), at('2027-02-28T10:00:00Z')]) {
        const expected = periodContaining(anchor, interval, instant);
        assert.deepEqual(billedPeriodContaining(schedule, instant), expected);
        assert.deepEqual(nextBilledPeriod(schedule, expected), nextPeriod(anchor, interval, expected));
      }
    }
  });

  test('nextBilledPeriod refuses a period that is neither of the schedule nor its first billed one', () => {
    const schedule = { start: at('2026-01-17T00:00:00Z'), billingAnchor: at('2026-01-01T00:00:00Z'), interval: monthly };
    assert.throws(
      () => nextBilledPeriod(schedule, { start: at('2026-02-10T00:00:00Z'), end: at('2026-03-01T00:00:00Z') }),
      /is not a period of this schedule/,
    );
  });
});
