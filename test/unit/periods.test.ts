import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nextPeriod, periodAt, periodContaining, periodContains, periodIndex, type Period } from '../../src/domain/periods';
import { InvalidDurationError, parseIsoDuration } from '../../src/domain/iso-duration';
import { BillingIntervalSchema, type BillingInterval } from '../../src/domain/periods-schema';

const monthly: BillingInterval = { kind: 'calendar_month' };
const every = (iso: string): BillingInterval => ({ kind: 'duration', iso });
const at = (iso: string) => new Date(iso);
const iso = (p: Period) => [p.start.toISOString(), p.end.toISOString()];
const timeOfDay = (d: Date) => ((d.getTime() % 86_400_000) + 86_400_000) % 86_400_000;

/** The first `n + 1` boundaries of a schedule, walked with nextPeriod from period 0. */
function boundaries(anchor: Date, interval: BillingInterval, n: number): string[] {
  let p = periodAt(anchor, interval, 0);
  const out = [p.start.toISOString()];
  for (let i = 0; i < n; i++) {
    out.push(p.end.toISOString());
    p = nextPeriod(anchor, interval, p);
  }
  return out;
}

describe('calendar months: the anchor day, clamped to short months, never drifting', () => {
  const cases: { name: string; anchor: string; boundaries: string[] }[] = [
    {
      name: 'Jan 31 in a common year',
      anchor: '2025-01-31T10:30:00.000Z',
      boundaries: [
        '2025-01-31',
        '2025-02-28',
        '2025-03-31',
        '2025-04-30',
        '2025-05-31',
        '2025-06-30',
        '2025-07-31',
        '2025-08-31',
        '2025-09-30',
        '2025-10-31',
        '2025-11-30',
        '2025-12-31',
        '2026-01-31',
      ],
    },
    {
      name: 'Jan 31 in a leap year',
      anchor: '2024-01-31T10:30:00.000Z',
      boundaries: [
        '2024-01-31',
        '2024-02-29',
        '2024-03-31',
        '2024-04-30',
        '2024-05-31',
        '2024-06-30',
        '2024-07-31',
        '2024-08-31',
        '2024-09-30',
        '2024-10-31',
        '2024-11-30',
        '2024-12-31',
        '2025-01-31',
      ],
    },
    {
      name: 'Feb 29: the 29th every month, Feb 28 in a common year',
      anchor: '2024-02-29T10:30:00.000Z',
      boundaries: [
        '2024-02-29',
        '2024-03-29',
        '2024-04-29',
        '2024-05-29',
        '2024-06-29',
        '2024-07-29',
        '2024-08-29',
        '2024-09-29',
        '2024-10-29',
        '2024-11-29',
        '2024-12-29',
        '2025-01-29',
        '2025-02-28',
        '2025-03-29',
      ],
    },
    {
      name: 'Mar 31 across the next February',
      anchor: '2025-03-31T10:30:00.000Z',
      boundaries: [
        '2025-03-31',
        '2025-04-30',
        '2025-05-31',
        '2025-06-30',
        '2025-07-31',
        '2025-08-31',
        '2025-09-30',
        '2025-10-31',
        '2025-11-30',
        '2025-12-31',
        '2026-01-31',
        '2026-02-28',
        '2026-03-31',
      ],
    },
    {
      name: 'Jan 30: Feb 28, then the 30th again',
      anchor: '2025-01-30T10:30:00.000Z',
      boundaries: ['2025-01-30', '2025-02-28', '2025-03-30', '2025-04-30'],
    },
    {
      name: 'the 15th at midnight, across a year end',
      anchor: '2025-11-15T00:00:00.000Z',
      boundaries: ['2025-11-15', '2025-12-15', '2026-01-15', '2026-02-15'],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const time = c.anchor.slice(10);
      const expected = c.boundaries.map((day) => day + time);
      assert.deepEqual(boundaries(at(c.anchor), monthly, expected.length - 1), expected);
    });
  }

  test('a leap day anchor reaches Feb 29 again four years on', () => {
    assert.deepEqual(iso(periodAt(at('2024-02-29T00:00:00Z'), monthly, 48)), ['2028-02-29T00:00:00.000Z', '2028-03-29T00:00:00.000Z']);
    assert.deepEqual(iso(periodAt(at('2024-02-29T00:00:00Z'), monthly, 12)), ['2025-02-28T00:00:00.000Z', '2025-03-29T00:00:00.000Z']);
  });

  test('periods before the anchor are numbered backwards from it', () => {
    assert.deepEqual(iso(periodAt(at('2025-03-31T00:00:00Z'), monthly, -1)), ['2025-02-28T00:00:00.000Z', '2025-03-31T00:00:00.000Z']);
    assert.equal(periodIndex(at('2025-03-31T00:00:00Z'), monthly, at('2024-12-31T00:00:00Z')), -3);
  });

  test('years below 100 are not read as 19xx', () => {
    const anchor = new Date(0);
    anchor.setUTCFullYear(50, 0, 31);
    assert.equal(periodAt(anchor, monthly, 1).start.getUTCFullYear(), 50);
    assert.equal(periodAt(anchor, monthly, 1).start.getUTCDate(), 28);
  });
});

describe('periodContaining: [start, end), boundaries belong to the period they start', () => {
  const anchor = at('2025-01-31T10:30:00Z');
  const cases: { name: string; interval: BillingInterval; anchor?: Date; instant: string; period: [string, string] }[] = [
    {
      name: 'the anchor itself',
      interval: monthly,
      instant: '2025-01-31T10:30:00.000Z',
      period: ['2025-01-31T10:30:00.000Z', '2025-02-28T10:30:00.000Z'],
    },
    {
      name: 'exactly on a clamped boundary',
      interval: monthly,
      instant: '2025-02-28T10:30:00.000Z',
      period: ['2025-02-28T10:30:00.000Z', '2025-03-31T10:30:00.000Z'],
    },
    {
      name: '1 ms before a boundary',
      interval: monthly,
      instant: '2025-02-28T10:29:59.999Z',
      period: ['2025-01-31T10:30:00.000Z', '2025-02-28T10:30:00.000Z'],
    },
    {
      name: 'earlier on the boundary day',
      interval: monthly,
      instant: '2025-03-31T00:00:00.000Z',
      period: ['2025-02-28T10:30:00.000Z', '2025-03-31T10:30:00.000Z'],
    },
    {
      name: 'in a month after the clamped one',
      interval: monthly,
      instant: '2025-03-30T23:59:59.999Z',
      period: ['2025-02-28T10:30:00.000Z', '2025-03-31T10:30:00.000Z'],
    },
    {
      name: 'a year later',
      interval: monthly,
      instant: '2026-01-31T10:30:00.000Z',
      period: ['2026-01-31T10:30:00.000Z', '2026-02-28T10:30:00.000Z'],
    },
    {
      name: 'PT5M at the anchor',
      interval: every('PT5M'),
      anchor: at('2025-01-01T00:02:00Z'),
      instant: '2025-01-01T00:02:00.000Z',
      period: ['2025-01-01T00:02:00.000Z', '2025-01-01T00:07:00.000Z'],
    },
    {
      name: 'PT5M on a boundary',
      interval: every('PT5M'),
      anchor: at('2025-01-01T00:02:00Z'),
      instant: '2025-01-01T00:07:00.000Z',
      period: ['2025-01-01T00:07:00.000Z', '2025-01-01T00:12:00.000Z'],
    },
    {
      name: 'PT5M 1 ms before a boundary',
      interval: every('PT5M'),
      anchor: at('2025-01-01T00:02:00Z'),
      instant: '2025-01-01T00:06:59.999Z',
      period: ['2025-01-01T00:02:00.000Z', '2025-01-01T00:07:00.000Z'],
    },
    {
      name: 'PT5M a day later',
      interval: every('PT5M'),
      anchor: at('2025-01-01T00:02:00Z'),
      instant: '2025-01-02T00:00:00.000Z',
      period: ['2025-01-01T23:57:00.000Z', '2025-01-02T00:02:00.000Z'],
    },
    {
      name: 'PT5M before the anchor',
      interval: every('PT5M'),
      anchor: at('2025-01-01T00:02:00Z'),
      instant: '2025-01-01T00:00:00.000Z',
      period: ['2024-12-31T23:57:00.000Z', '2025-01-01T00:02:00.000Z'],
    },
    {
      name: 'P1DT12H',
      interval: every('P1DT12H'),
      anchor: at('2025-01-01T00:00:00Z'),
      instant: '2025-01-03T11:59:59.999Z',
      period: ['2025-01-02T12:00:00.000Z', '2025-01-04T00:00:00.000Z'],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p = periodContaining(c.anchor ?? anchor, c.interval, at(c.instant));
      assert.deepEqual(iso(p), c.period);
      assert.ok(periodContains(p, at(c.instant)));
      assert.ok(periodContains(p, p.start), 'a period contains its start');
      assert.ok(!periodContains(p, p.end), 'a period does not contain its end');
    });
  }

  test('takes epoch milliseconds as well as Dates', () => {
    assert.deepEqual(
      periodContaining(anchor.getTime(), monthly, Date.parse('2025-03-01T00:00:00Z')),
      periodContaining(anchor, monthly, at('2025-03-01T00:00:00Z')),
    );
  });

  test('refuses invalid instants', () => {
    assert.throws(() => periodContaining(at('nonsense'), monthly, anchor), /anchor is not a valid instant/);
    assert.throws(() => periodContaining(anchor, monthly, Number.NaN), /instant is not a valid instant/);
  });
});

describe('UTC only: daylight saving time changes nothing', () => {
  test('an hour is 3,600,000 ms and a day 86,400,000 ms on DST change days', () => {
    // 2025-03-30 01:00 UTC: Europe switches to summer time; 2025-03-09 07:00 UTC: the US does.
    for (const [interval, length] of [
      [every('PT1H'), 3_600_000],
      [every('P1D'), 86_400_000],
    ] as const) {
      for (const day of ['2025-03-30T00:00:00Z', '2025-03-09T00:00:00Z', '2025-10-26T00:00:00Z', '2025-11-02T00:00:00Z']) {
        for (let i = 0; i < 24; i++) {
          const p = periodAt(at(day), interval, i);
          assert.equal(p.end.getTime() - p.start.getTime(), length);
        }
      }
    }
  });

  test('a monthly boundary keeps the UTC time of day across a DST change', () => {
    assert.deepEqual(iso(periodAt(at('2025-03-15T00:30:00Z'), monthly, 0)), ['2025-03-15T00:30:00.000Z', '2025-04-15T00:30:00.000Z']);
    assert.deepEqual(iso(periodAt(at('2025-10-15T23:30:00Z'), monthly, 0)), ['2025-10-15T23:30:00.000Z', '2025-11-15T23:30:00.000Z']);
  });

  test('the process time zone does not matter', () => {
    const saved = process.env.TZ;
    const compute = () => [
      boundaries(at('2025-01-31T23:30:00Z'), monthly, 12),
      boundaries(at('2025-03-29T22:00:00Z'), every('P1D'), 5),
      periodIndex(at('2025-01-31T23:30:00Z'), monthly, at('2025-10-26T01:30:00Z')),
    ];
    try {
      process.env.TZ = 'UTC';
      const utc = compute();
      for (const zone of ['America/New_York', 'Europe/Berlin', 'Australia/Lord_Howe', 'Pacific/Kiritimati']) {
        process.env.TZ = zone;
        assert.deepEqual(compute(), utc, zone);
      }
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });
});

describe('nextPeriod', () => {
  test('walks PT5M periods back to back', () => {
    assert.deepEqual(boundaries(at('2025-01-01T00:00:00Z'), every('PT5M'), 3), [
      '2025-01-01T00:00:00.000Z',
      '2025-01-01T00:05:00.000Z',
      '2025-01-01T00:10:00.000Z',
      '2025-01-01T00:15:00.000Z',
    ]);
  });

  test('refuses a period that is not one of the schedule', () => {
    const anchor = at('2025-01-31T00:00:00Z');
    assert.throws(
      () => nextPeriod(anchor, monthly, { start: at('2025-02-01T00:00:00Z'), end: at('2025-03-01T00:00:00Z') }),
      /is not a period of this schedule; the one holding its start is \[2025-01-31T00:00:00.000Z, 2025-02-28T00:00:00.000Z\)/,
    );
  });
});

describe('parseIsoDuration', () => {
  for (const [input, ms] of [
    ['PT5M', 300_000],
    ['PT1H', 3_600_000],
    ['PT30S', 30_000],
    ['P1D', 86_400_000],
    ['P1DT12H', 129_600_000],
    ['P2W', 1_209_600_000],
    ['P1W2DT3H4M5S', 788_645_000],
    ['PT90M', 5_400_000],
    ['PT0S', 0],
    ['P0D', 0],
  ] as const) {
    test(`${input} = ${ms} ms`, () => assert.equal(parseIsoDuration(input), ms));
  }

  for (const [input, reason] of [
    ['P1M', /years and months have no fixed length; use the calendar_month interval/],
    ['P1Y', /years and months have no fixed length/],
    ['P1Y2M3D', /years and months have no fixed length/],
    ['P1MT5M', /years and months have no fixed length/],
    ['PT1.5S', /whole numbers/],
    ['pt5m', /upper-case designators/],
    ['PT-5M', /expected P\[nW\]/],
    ['5M', /expected P\[nW\]/],
    ['P1D2W', /expected P\[nW\]/],
    ['', /expected P\[nW\]/],
    ['P', /names no amount/],
    ['PT', /names no amount/],
    ['P1DT', /names no amount/],
    ['P100001D', /longer than 100,000 days/],
    ['P99999999999999999999W', /longer than 100,000 days/],
  ] as const) {
    test(`refuses ${JSON.stringify(input)}`, () => {
      assert.throws(
        () => parseIsoDuration(input),
        (err: unknown) =>
          err instanceof InvalidDurationError &&
          reason.test(err.message) &&
          err.message.startsWith(`${JSON.stringify(input)} is not a supported ISO 8601 duration`),
      );
    });
  }
});

describe('BillingIntervalSchema', () => {
  test('accepts a calendar month and fixed durations', () => {
    assert.deepEqual(BillingIntervalSchema.parse({ kind: 'calendar_month' }), { kind: 'calendar_month' });
    assert.deepEqual(BillingIntervalSchema.parse({ kind: 'duration', iso: 'PT5M' }), { kind: 'duration', iso: 'PT5M' });
  });

  for (const [name, input, path, message] of [
    ['a month as a duration', { kind: 'duration', iso: 'P1M' }, 'iso', /years and months have no fixed length/],
    ['a zero duration', { kind: 'duration', iso: 'PT0S' }, 'iso', /^must be longer than zero$/],
    ['a missing duration', { kind: 'duration' }, 'iso', /expected string/],
    ['an unknown kind', { kind: 'weekly' }, 'kind', /calendar_month/],
    ['an unknown key', { kind: 'calendar_month', day: 1 }, '', /Unrecognized key: "day"/],
  ] as const) {
    test(`refuses ${name}, naming the field`, () => {
      const result = BillingIntervalSchema.safeParse(input);
      assert.equal(result.success, false);
      const [first] = result.error!.issues;
      assert.equal(first!.path.join('.'), path);
      assert.match(first!.message, message);
    });
  }
});

describe('properties', () => {
  const anchors = fc.date({ min: at('0001-01-01T00:00:00Z'), max: at('9999-12-31T23:59:59.999Z'), noInvalidDate: true });
  const durations = fc
    .record({ d: fc.nat(400), h: fc.nat(48), m: fc.nat(120), s: fc.nat(120) })
    .filter(({ d, h, m, s }) => d + h + m + s > 0)
    .map(({ d, h, m, s }): BillingInterval => every(`P${d}DT${h}H${m}M${s}S`));
  const intervals = fc.oneof(fc.constant(monthly), durations);
  const indices = fc.integer({ min: -1200, max: 1200 });

  test('consecutive periods tile time: each ends where the next starts, and is not empty', () => {
    fc.assert(
      fc.property(anchors, intervals, indices, (anchor, interval, k) => {
        const p = periodAt(anchor, interval, k);
        const q = periodAt(anchor, interval, k + 1);
        assert.ok(p.start < p.end);
        assert.equal(p.end.getTime(), q.start.getTime());
        assert.deepEqual(nextPeriod(anchor, interval, p), q);
      }),
    );
  });

  test('every instant belongs to exactly one period', () => {
    fc.assert(
      fc.property(
        anchors,
        intervals,
        indices,
        fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
        (anchor, interval, k, fraction) => {
          const around = periodAt(anchor, interval, k);
          const instant = around.start.getTime() + Math.floor(fraction * (around.end.getTime() - around.start.getTime()));
          const p = periodContaining(anchor, interval, instant);
          assert.equal(periodIndex(anchor, interval, instant), k);
          assert.deepEqual(p, around);
          assert.ok(periodContains(p, instant));
          assert.ok(!periodContains(periodAt(anchor, interval, k - 1), instant));
          assert.ok(!periodContains(periodAt(anchor, interval, k + 1), instant));
        },
      ),
    );
  });

  test('monthly periods start on the anchor day clamped to the month, at the anchor time of day', () => {
    fc.assert(
      fc.property(anchors, indices, (anchor, k) => {
        const { start } = periodAt(anchor, monthly, k);
        const lastDay = new Date(0);
        lastDay.setUTCFullYear(start.getUTCFullYear(), start.getUTCMonth() + 1, 0);
        assert.equal(start.getUTCDate(), Math.min(anchor.getUTCDate(), lastDay.getUTCDate()));
        assert.equal(timeOfDay(start), timeOfDay(anchor));
        const months = (start.getUTCFullYear() - anchor.getUTCFullYear()) * 12 + start.getUTCMonth() - anchor.getUTCMonth();
        assert.equal(months, k);
      }),
    );
  });
});
