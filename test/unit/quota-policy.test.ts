import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import Decimal from 'decimal.js';
import { checkEntitlement, evaluateLimit, nextDecision } from '../../src/domain/quota-policy';
import { thresholdKey } from '../../src/domain/threshold-key';
import { MeterLimitSchema, MeterLimitsSchema, type LimitState, type MeterLimit } from '../../src/domain/quota-policy-schema';

const limitOf = (input: Record<string, unknown>): MeterLimit => MeterLimitSchema.parse({ meter: 'api_calls', ...input });
const ok: LimitState = { status: 'ok' };
const t0 = new Date('2025-03-01T12:00:00.000Z');
const later = (ms: number) => new Date(t0.getTime() + ms);
const HOUR = 3_600_000;

describe('MeterLimitSchema', () => {
  test('a limit with soft thresholds and a hard limit', () => {
    assert.deepEqual(
      limitOf({
        soft_thresholds: [{ percent: 80 }, { absolute: '900' }],
        hard_limit: '1000',
        grace_period: 'PT1H',
        at_hard_limit: 'block',
      }),
      {
        meter: 'api_calls',
        soft_thresholds: [{ percent: 80 }, { absolute: '900' }],
        hard_limit: '1000',
        grace_period: 'PT1H',
        at_hard_limit: 'block',
      },
    );
  });

  test('soft thresholds alone, no hard limit', () => {
    assert.deepEqual(limitOf({ soft_thresholds: [{ absolute: '10' }] }), { meter: 'api_calls', soft_thresholds: [{ absolute: '10' }] });
  });

  test('a hard limit alone; soft thresholds default to none', () => {
    assert.deepEqual(limitOf({ hard_limit: '0', at_hard_limit: 'allow' }).soft_thresholds, []);
  });

  const base = { meter: 'api_calls', hard_limit: '1000', at_hard_limit: 'block' };
  const invalid: { name: string; input: unknown; path: string; message: RegExp }[] = [
    {
      name: 'percent without a hard limit',
      input: { meter: 'api_calls', soft_thresholds: [{ percent: 80 }] },
      path: 'soft_thresholds.0.percent',
      message: /percent of hard_limit, which is not set/,
    },
    {
      name: 'duplicate percent',
      input: { ...base, soft_thresholds: [{ percent: 80 }, { percent: 80 }] },
      path: 'soft_thresholds.1',
      message: /^duplicates soft_thresholds\[0\] \(80%\)$/,
    },
    {
      name: 'duplicate absolute, written differently',
      input: { ...base, soft_thresholds: [{ absolute: '900' }, { absolute: '900.00' }] },
      path: 'soft_thresholds.1',
      message: /duplicates soft_thresholds\[0\] \(900\)/,
    },
    {
      name: 'negative hard limit',
      input: { ...base, hard_limit: '-1' },
      path: 'hard_limit',
      message: /"-1" is not a non-negative decimal string/,
    },
    { name: 'hard limit as a JSON number', input: { ...base, hard_limit: 1000 }, path: 'hard_limit', message: /JSON numbers are refused/ },
    {
      name: 'hard limit in exponent notation',
      input: { ...base, hard_limit: '1e3' },
      path: 'hard_limit',
      message: /"1e3" is not a non-negative decimal string/,
    },
    {
      name: 'negative absolute threshold',
      input: { ...base, soft_thresholds: [{ absolute: '-5' }] },
      path: 'soft_thresholds.0.absolute',
      message: /"-5" is not a non-negative decimal string/,
    },
    {
      name: 'zero absolute threshold',
      input: { ...base, soft_thresholds: [{ absolute: '0' }] },
      path: 'soft_thresholds.0.absolute',
      message: /^must be greater than 0$/,
    },
    {
      name: 'zero percent',
      input: { ...base, soft_thresholds: [{ percent: 0 }] },
      path: 'soft_thresholds.0.percent',
      message: /^must be greater than 0$/,
    },
    {
      name: 'percent as a string',
      input: { ...base, soft_thresholds: [{ percent: '80' }] },
      path: 'soft_thresholds.0',
      message: /^percent must be a number such as 80 \(got "80"\)$/,
    },
    {
      name: 'absolute as a number',
      input: { ...base, soft_thresholds: [{ absolute: 900 }] },
      path: 'soft_thresholds.0',
      message: /^absolute must be a decimal string such as "1000" \(got 900\)$/,
    },
    {
      name: 'both percent and absolute',
      input: { ...base, soft_thresholds: [{ percent: 80, absolute: '900' }] },
      path: 'soft_thresholds.0',
      message: /either percent or absolute, not both/,
    },
    {
      name: 'a threshold of neither kind',
      input: { ...base, soft_thresholds: [{}] },
      path: 'soft_thresholds.0',
      message: /must be \{ "percent": 80 \} or \{ "absolute": "1000" \}/,
    },
    {
      name: 'monthly grace period',
      input: { ...base, grace_period: 'P1M' },
      path: 'grace_period',
      message: /"P1M" is not a supported ISO 8601 duration: years and months/,
    },
    {
      name: 'grace period with allow',
      input: { ...base, at_hard_limit: 'allow', grace_period: 'PT1H' },
      path: 'grace_period',
      message: /applies only when at_hard_limit is "block"/,
    },
    {
      name: 'hard limit without at_hard_limit',
      input: { meter: 'api_calls', hard_limit: '10' },
      path: 'at_hard_limit',
      message: /is required with hard_limit/,
    },
    {
      name: 'at_hard_limit without a hard limit',
      input: { meter: 'api_calls', soft_thresholds: [{ absolute: '5' }], at_hard_limit: 'block' },
      path: 'at_hard_limit',
      message: /applies only with a hard_limit/,
    },
    {
      name: 'unknown at_hard_limit',
      input: { ...base, at_hard_limit: 'throttle' },
      path: 'at_hard_limit',
      message: /must be "block" .* or "allow"/,
    },
    {
      name: 'nothing to enforce',
      input: { meter: 'api_calls' },
      path: 'hard_limit',
      message: /needs a hard_limit, soft_thresholds or both/,
    },
    { name: 'misspelt key', input: { ...base, hardlimit: '5' }, path: '', message: /Unrecognized key: "hardlimit"/ },
  ];
  for (const c of invalid) {
    test(`refuses ${c.name}, naming the field`, () => {
      const result = MeterLimitSchema.safeParse(c.input);
      assert.equal(result.success, false);
      const [first] = result.error!.issues;
      assert.equal(first!.path.join('.'), c.path);
      assert.match(first!.message, c.message);
    });
  }

  test('a plan has at most one limit per meter', () => {
    const result = MeterLimitsSchema.safeParse([base, base]);
    assert.equal(result.error?.issues[0]?.path.join('.'), '1.meter');
    assert.match(result.error!.issues[0]!.message, /meter "api_calls" already has a limit/);
  });
});

describe('thresholdKey', () => {
  for (const [threshold, key] of [
    [{ percent: 80 }, '80%'],
    [{ percent: 12.5 }, '12.5%'],
    [{ absolute: '1000' }, '1000'],
    [{ absolute: '1000.50' }, '1000.5'],
    [{ absolute: '0.0000001' }, '0.0000001'],
  ] as const) {
    test(`${JSON.stringify(threshold)} → ${key}`, () => assert.equal(thresholdKey(threshold), key));
  }
});

describe('soft thresholds', () => {
  const limit = limitOf({
    soft_thresholds: [{ percent: 100 }, { percent: 50 }, { absolute: '900' }, { percent: 80 }],
    hard_limit: '1000',
    at_hard_limit: 'allow',
  });

  test('each threshold is crossed once per period as usage grows', () => {
    const steps: { usage: string; crossed: string[] }[] = [
      { usage: '0', crossed: [] },
      { usage: '499.999', crossed: [] },
      { usage: '500', crossed: ['50%'] },
      { usage: '700', crossed: [] },
      { usage: '800', crossed: ['80%'] },
      { usage: '800', crossed: [] },
      { usage: '950', crossed: ['900'] },
      { usage: '1000', crossed: ['100%'] },
      { usage: '5000', crossed: [] },
    ];
    const notified: string[] = [];
    let state: LimitState = ok;
    for (const step of steps) {
      const result = evaluateLimit(limit, { usage: step.usage, notified, state }, t0);
      assert.deepEqual(
        result.newlyCrossed.map((c) => c.key),
        step.crossed,
        `at usage ${step.usage}`,
      );
      notified.push(...result.newlyCrossed.map((c) => c.key));
      state = result.state;
    }
  });

  test('several thresholds crossed at once come lowest first, with the usage at which each fires', () => {
    const result = evaluateLimit(limit, { usage: '1000', notified: [], state: ok }, t0);
    assert.deepEqual(result.newlyCrossed, [
      { key: '50%', value: '500' },
      { key: '80%', value: '800' },
      { key: '900', value: '900' },
      { key: '100%', value: '1000' },
    ]);
  });

  test('a notified threshold stays notified when a plan change moves the hard limit', () => {
    const raised = limitOf({ soft_thresholds: [{ percent: 80 }], hard_limit: '2000', at_hard_limit: 'allow' });
    assert.deepEqual(evaluateLimit(raised, { usage: '1700', notified: new Set(['80%']), state: ok }, t0).newlyCrossed, []);
  });

  test('percent of the limit is computed exactly', () => {
    // 80% of 0.1 in binary floating point is 0.08000000000000002.
    const tiny = limitOf({ soft_thresholds: [{ percent: 80 }, { percent: 33.3 }], hard_limit: '0.1', at_hard_limit: 'block' });
    assert.deepEqual(evaluateLimit(tiny, { usage: '0.08', notified: [], state: ok }, t0).newlyCrossed, [
      { key: '33.3%', value: '0.0333' },
      { key: '80%', value: '0.08' },
    ]);
    assert.deepEqual(evaluateLimit(tiny, { usage: '0.079999999999999999999', notified: ['33.3%'], state: ok }, t0).newlyCrossed, []);
  });
});

describe('the hard limit', () => {
  const block = limitOf({ hard_limit: '100', grace_period: 'PT1H', at_hard_limit: 'block' });

  test('is exceeded only strictly above it, compared exactly', () => {
    for (const [usage, over] of [
      ['99.999999999999999999', false],
      ['100', false],
      ['100.000000000000000000', false],
      ['100.000000000000000001', true],
      ['100000000000000000000', true],
    ] as const) {
      const result = evaluateLimit(block, { usage, notified: [], state: ok }, t0);
      assert.equal(result.overHardLimit, over, usage);
      assert.equal(result.state.status, over ? 'over_limit_in_grace' : 'ok', usage);
    }
  });

  test('grace, then blocked at the grace deadline', () => {
    const steps: { at: Date; usage: string; state: LimitState }[] = [
      {
        at: t0,
        usage: '101',
        state: { status: 'over_limit_in_grace', over_since: t0.toISOString(), grace_ends_at: later(HOUR).toISOString() },
      },
      {
        at: later(HOUR / 2),
        usage: '150',
        state: { status: 'over_limit_in_grace', over_since: t0.toISOString(), grace_ends_at: later(HOUR).toISOString() },
      },
      {
        at: later(HOUR - 1),
        usage: '150',
        state: { status: 'over_limit_in_grace', over_since: t0.toISOString(), grace_ends_at: later(HOUR).toISOString() },
      },
      {
        at: later(HOUR),
        usage: '150',
        state: { status: 'blocked', over_since: t0.toISOString(), blocked_since: later(HOUR).toISOString() },
      },
      {
        at: later(3 * HOUR),
        usage: '150',
        state: { status: 'blocked', over_since: t0.toISOString(), blocked_since: later(HOUR).toISOString() },
      },
    ];
    let state: LimitState = ok;
    for (const step of steps) {
      state = evaluateLimit(block, { usage: step.usage, notified: [], state }, step.at).state;
      assert.deepEqual(state, step.state, step.at.toISOString());
    }
  });

  test('a timer firing late still blocks as of the deadline', () => {
    const inGrace: LimitState = { status: 'over_limit_in_grace', over_since: t0.toISOString(), grace_ends_at: later(HOUR).toISOString() };
    assert.deepEqual(evaluateLimit(block, { usage: '101', notified: [], state: inGrace }, later(5 * HOUR)).state, {
      status: 'blocked',
      over_since: t0.toISOString(),
      blocked_since: later(HOUR).toISOString(),
    });
  });

  test('no grace period blocks at once', () => {
    const strict = limitOf({ hard_limit: '100', at_hard_limit: 'block' });
    assert.deepEqual(evaluateLimit(strict, { usage: '101', notified: [], state: ok }, t0).state, {
      status: 'blocked',
      over_since: t0.toISOString(),
      blocked_since: t0.toISOString(),
    });
  });

  test('allow never blocks: over the limit is overage, from the first crossing on', () => {
    const allow = limitOf({ hard_limit: '100', at_hard_limit: 'allow' });
    let state: LimitState = ok;
    for (const [hours, usage] of [
      [0, '101'],
      [1, '500'],
      [24 * 30, '1000000'],
    ] as const) {
      state = evaluateLimit(allow, { usage, notified: [], state }, later(hours * HOUR)).state;
      assert.deepEqual(state, { status: 'overage', over_since: t0.toISOString() });
    }
  });
});

describe('plan changes', () => {
  const blocked: LimitState = { status: 'blocked', over_since: t0.toISOString(), blocked_since: later(HOUR).toISOString() };
  const now = later(2 * HOUR);
  const cases: { name: string; limit: Record<string, unknown>; from: LimitState; usage: string; to: LimitState }[] = [
    {
      name: 'a limit raised above usage unblocks',
      limit: { hard_limit: '1000', grace_period: 'PT1H', at_hard_limit: 'block' },
      from: blocked,
      usage: '150',
      to: ok,
    },
    {
      name: 'a limit raised to exactly usage unblocks',
      limit: { hard_limit: '150', at_hard_limit: 'block' },
      from: blocked,
      usage: '150',
      to: ok,
    },
    {
      name: 'a plan without a hard limit unblocks',
      limit: { soft_thresholds: [{ absolute: '100' }] },
      from: blocked,
      usage: '150',
      to: ok,
    },
    {
      name: 'a plan that allows overage unblocks into overage',
      limit: { hard_limit: '100', at_hard_limit: 'allow' },
      from: blocked,
      usage: '150',
      to: { status: 'overage', over_since: t0.toISOString() },
    },
    {
      name: 'a limit raised but still below usage stays blocked',
      limit: { hard_limit: '120', grace_period: 'PT1H', at_hard_limit: 'block' },
      from: blocked,
      usage: '150',
      to: blocked,
    },
    {
      name: 'a running grace period keeps its deadline',
      limit: { hard_limit: '120', grace_period: 'P1D', at_hard_limit: 'block' },
      from: { status: 'over_limit_in_grace', over_since: t0.toISOString(), grace_ends_at: later(3 * HOUR).toISOString() },
      usage: '150',
      to: { status: 'over_limit_in_grace', over_since: t0.toISOString(), grace_ends_at: later(3 * HOUR).toISOString() },
    },
    {
      name: 'from overage to a blocking plan, the grace period starts at the change',
      limit: { hard_limit: '100', grace_period: 'PT1H', at_hard_limit: 'block' },
      from: { status: 'overage', over_since: t0.toISOString() },
      usage: '150',
      to: { status: 'over_limit_in_grace', over_since: t0.toISOString(), grace_ends_at: later(3 * HOUR).toISOString() },
    },
  ];
  for (const c of cases) {
    test(c.name, () => assert.deepEqual(evaluateLimit(limitOf(c.limit), { usage: c.usage, notified: [], state: c.from }, now).state, c.to));
  }
});

describe('checkEntitlement', () => {
  const periodEnd = new Date('2025-03-31T10:30:00.000Z');
  const thresholds = [{ percent: 80 }, { percent: 100 }];
  const inGrace: LimitState = { status: 'over_limit_in_grace', over_since: t0.toISOString(), grace_ends_at: later(HOUR).toISOString() };
  const blocked: LimitState = { status: 'blocked', over_since: t0.toISOString(), blocked_since: t0.toISOString() };
  const cases: {
    name: string;
    limit: MeterLimit | undefined;
    usage: string;
    quantity?: string;
    state: LimitState;
    allowed: boolean;
    remaining: string | null;
    crossed: string[];
  }[] = [
    { name: 'no limit on the meter', limit: undefined, usage: '1000000', state: ok, allowed: true, remaining: null, crossed: [] },
    {
      name: 'well within',
      limit: limitOf({ soft_thresholds: thresholds, hard_limit: '100', at_hard_limit: 'block' }),
      usage: '10',
      state: ok,
      allowed: true,
      remaining: '90',
      crossed: [],
    },
    {
      name: 'past a soft threshold',
      limit: limitOf({ soft_thresholds: thresholds, hard_limit: '100', at_hard_limit: 'block' }),
      usage: '85.5',
      state: ok,
      allowed: true,
      remaining: '14.5',
      crossed: ['80%'],
    },
    {
      name: 'a quantity that fits exactly',
      limit: limitOf({ hard_limit: '100', at_hard_limit: 'block' }),
      usage: '95',
      quantity: '5',
      state: ok,
      allowed: true,
      remaining: '5',
      crossed: [],
    },
    {
      name: 'a quantity that would exceed a limit without grace',
      limit: limitOf({ hard_limit: '100', at_hard_limit: 'block' }),
      usage: '95',
      quantity: '5.000000000000000001',
      state: ok,
      allowed: false,
      remaining: '5',
      crossed: [],
    },
    {
      name: 'a quantity that would exceed, with a grace period',
      limit: limitOf({ hard_limit: '100', grace_period: 'PT1H', at_hard_limit: 'block' }),
      usage: '95',
      quantity: '10',
      state: ok,
      allowed: true,
      remaining: '5',
      crossed: [],
    },
    {
      name: 'in grace',
      limit: limitOf({ soft_thresholds: thresholds, hard_limit: '100', grace_period: 'PT1H', at_hard_limit: 'block' }),
      usage: '120',
      state: inGrace,
      allowed: true,
      remaining: '0',
      crossed: ['80%', '100%'],
    },
    {
      name: 'blocked',
      limit: limitOf({ soft_thresholds: thresholds, hard_limit: '100', at_hard_limit: 'block' }),
      usage: '120',
      state: blocked,
      allowed: false,
      remaining: '0',
      crossed: ['80%', '100%'],
    },
    {
      name: 'overage is allowed',
      limit: limitOf({ hard_limit: '100', at_hard_limit: 'allow' }),
      usage: '120',
      quantity: '1000',
      state: { status: 'overage', over_since: t0.toISOString() },
      allowed: true,
      remaining: '0',
      crossed: [],
    },
    {
      name: 'soft thresholds only',
      limit: limitOf({ soft_thresholds: [{ absolute: '10' }] }),
      usage: '10',
      quantity: '1',
      state: ok,
      allowed: true,
      remaining: null,
      crossed: ['10'],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.deepEqual(
        checkEntitlement(c.limit, {
          usage: c.usage,
          state: c.state,
          periodEnd,
          ...(c.quantity === undefined ? {} : { quantity: c.quantity }),
        }),
        {
          allowed: c.allowed,
          remaining: c.remaining,
          state: c.state.status,
          soft_thresholds_crossed: c.crossed,
          resets_at: '2025-03-31T10:30:00.000Z',
        },
      );
    });
  }

  test('refuses usage or quantities that are not non-negative decimal strings', () => {
    const limit = limitOf({ hard_limit: '100', at_hard_limit: 'block' });
    assert.throws(
      () => checkEntitlement(limit, { usage: '1e3', state: ok, periodEnd }),
      /usage "1e3" is not a non-negative decimal string/,
    );
    assert.throws(
      () => checkEntitlement(limit, { usage: '1', quantity: '-1', state: ok, periodEnd }),
      /quantity "-1" is not a non-negative decimal string/,
    );
    assert.throws(() => evaluateLimit(limit, { usage: 'NaN', notified: [], state: ok }, t0), /usage "NaN"/);
  });
});

describe('properties', () => {
  /** A non-negative decimal string with up to 6 fraction digits, built from integers (no floats). */
  const decimal = fc.tuple(fc.bigInt({ min: 0n, max: 10n ** 12n }), fc.integer({ min: 0, max: 6 })).map(([n, scale]) => {
    const digits = n.toString().padStart(scale + 1, '0');
    return scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  });
  const limits = fc
    .record({
      percents: fc.uniqueArray(fc.integer({ min: 1, max: 150 }), { maxLength: 4 }),
      absolutes: fc.uniqueArray(
        decimal.filter((d) => /[1-9]/.test(d)),
        { maxLength: 3, selector: (d) => new Decimal(d).toFixed() },
      ),
      hard_limit: decimal,
      grace_minutes: fc.nat(120),
      at_hard_limit: fc.constantFrom('block', 'allow'),
    })
    .map(({ percents, absolutes, hard_limit, grace_minutes, at_hard_limit }) =>
      limitOf({
        soft_thresholds: [...percents.map((percent) => ({ percent })), ...absolutes.map((absolute) => ({ absolute }))],
        hard_limit,
        at_hard_limit,
        ...(at_hard_limit === 'block' ? { grace_period: `PT${grace_minutes}M` } : {}),
      }),
    );
  /** Usage observations in increasing order, a minute apart. */
  const growth = fc.array(decimal, { minLength: 1, maxLength: 12 }).map((values) => values.sort((a, b) => new Decimal(a).comparedTo(b)));

  test('over a period, each threshold notifies exactly once if usage reaches it, and never otherwise', () => {
    fc.assert(
      fc.property(limits, growth, (limit, usages) => {
        const notified: string[] = [];
        let state: LimitState = ok;
        usages.forEach((usage, i) => {
          const result = evaluateLimit(limit, { usage, notified, state }, later(i * 60_000));
          notified.push(...result.newlyCrossed.map((c) => c.key));
          state = result.state;
        });
        const final = usages.at(-1)!;
        const expected = checkEntitlement(limit, { usage: final, state, periodEnd: t0 }).soft_thresholds_crossed;
        assert.deepEqual([...notified].sort(), [...expected].sort());
        assert.equal(new Set(notified).size, notified.length);
      }),
    );
  });

  test('allow limits are never blocked, and nothing is over its limit while ok', () => {
    fc.assert(
      fc.property(limits, growth, (limit, usages) => {
        let state: LimitState = ok;
        usages.forEach((usage, i) => {
          const result = evaluateLimit(limit, { usage, notified: [], state }, later(i * 60_000));
          state = result.state;
          if (limit.at_hard_limit === 'allow') assert.notEqual(state.status, 'blocked');
          assert.equal(result.overHardLimit, state.status !== 'ok');
        });
      }),
    );
  });
});

describe('nextDecision', () => {
  const limit = limitOf({
    soft_thresholds: [{ percent: 50 }, { percent: 80 }, { absolute: '1500' }],
    hard_limit: '1000',
    grace_period: 'PT1H',
    at_hard_limit: 'block',
  });

  test('the lowest soft threshold not yet notified above the usage', () => {
    assert.equal(nextDecision(limit, { usage: '0', notified: [] }), '500');
    assert.equal(nextDecision(limit, { usage: '499.99', notified: [] }), '500');
    assert.equal(nextDecision(limit, { usage: '500', notified: ['50%'] }), '800');
    // Notified thresholds are skipped whatever the usage (a plan change may have moved them).
    assert.equal(nextDecision(limit, { usage: '100', notified: ['50%', '80%'] }), '1000');
  });

  test('the hard limit while usage is not over it, also when a threshold above it is pending', () => {
    assert.equal(nextDecision(limit, { usage: '900', notified: ['50%', '80%'] }), '1000');
    assert.equal(nextDecision(limit, { usage: '1000', notified: ['50%', '80%'] }), '1000');
    // Over the hard limit: only the threshold beyond it is left.
    assert.equal(nextDecision(limit, { usage: '1000.000001', notified: ['50%', '80%'] }), '1500');
  });

  test('null once nothing is left to decide', () => {
    assert.equal(nextDecision(limit, { usage: '2000', notified: ['50%', '80%', '1500'] }), null);
    assert.equal(nextDecision(limitOf({ soft_thresholds: [{ absolute: '10' }] }), { usage: '10', notified: ['10'] }), null);
    assert.equal(nextDecision(limitOf({ hard_limit: '5', at_hard_limit: 'allow' }), { usage: '6', notified: [] }), null);
  });

  test('exact for long decimals', () => {
    const precise = limitOf({
      soft_thresholds: [{ percent: 33 }],
      hard_limit: '12345678901234567890.12345678901234567891',
      at_hard_limit: 'allow',
    });
    assert.equal(
      nextDecision(precise, { usage: '0', notified: [] }),
      // 12345678901234567890.12345678901234567891 × 0.33, every digit kept.
      '4074074037407407403.7407407403740740740403',
    );
  });

  test('agrees with evaluateLimit: below the decision point nothing new is decided, at it something is', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3000 }), (start) => {
        const notified = evaluateLimit(limit, { usage: String(start), notified: [], state: ok }, t0).newlyCrossed.map((c) => c.key);
        const before = evaluateLimit(limit, { usage: String(start), notified: [], state: ok }, t0);
        const at = nextDecision(limit, { usage: String(start), notified });
        if (at === null) return;
        const below = new Decimal(at).minus('0.000001');
        if (below.gte(start)) {
          const e = evaluateLimit(limit, { usage: below.toFixed(), notified, state: before.state }, t0);
          assert.deepEqual(e.newlyCrossed, []);
          assert.equal(e.state.status, before.state.status);
        }
        const over = new Decimal(at).plus('0.000001').toFixed();
        const e = evaluateLimit(limit, { usage: over, notified, state: before.state }, t0);
        assert.ok(e.newlyCrossed.length > 0 || e.state.status !== before.state.status);
      }),
    );
  });
});
