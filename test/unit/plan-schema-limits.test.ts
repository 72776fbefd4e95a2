import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PlanSchema, planSchema } from '../../src/domain/plan';
import { pricePlan } from '../../src/domain/pricing';

const plan = {
  id: 'pro-2026',
  name: 'Pro',
  currency: 'USD',
  base_fee: '49.00',
  charges: [{ meter: 'api_calls', model: 'overage', included_units: '1000', unit_price: '0.002' }],
  interval: { kind: 'calendar_month' },
  limits: [
    {
      meter: 'api_calls',
      soft_thresholds: [{ percent: 80 }, { absolute: '950' }],
      hard_limit: '1000',
      grace_period: 'PT1H',
      at_hard_limit: 'block',
    },
  ],
};
const known = new Set(['api_calls', 'storage_gb']);

describe('PlanSchema accepts plans with an interval and limits', () => {
  test('a monthly plan parses as given and prices under its code', () => {
    const parsed = PlanSchema.parse(plan);
    assert.deepEqual(parsed, plan);
    assert.equal(pricePlan(parsed, { api_calls: '1500' }).plan_id, 'pro-2026');
    assert.equal(pricePlan(parsed, { api_calls: '1500' }).totals.total, '50.00');
  });

  test('a fixed-duration interval; limits default to none', () => {
    const { limits: _limits, ...withoutLimits } = plan;
    const parsed = PlanSchema.parse({ ...withoutLimits, interval: { kind: 'duration', iso: 'PT5M' } });
    assert.deepEqual(parsed.interval, { kind: 'duration', iso: 'PT5M' });
    assert.deepEqual(parsed.limits, []);
  });

  test('with the defined meters, a limit may cap a meter the plan does not charge for', () => {
    const capped = { ...plan, limits: [...plan.limits, { meter: 'storage_gb', hard_limit: '10', at_hard_limit: 'allow' }] };
    assert.equal(planSchema({ knownMeters: known }).safeParse(capped).success, true);
    assert.equal(PlanSchema.safeParse(capped).success, false);
  });
});

/** Each invalid plan, the field its first issue names, and what the message says. */
const invalid: { name: string; plan: unknown; path: string; message: RegExp; knownMeters?: ReadonlySet<string> }[] = [
  {
    name: 'months as a duration',
    plan: { ...plan, interval: { kind: 'duration', iso: 'P1M' } },
    path: 'interval.iso',
    message: /use the calendar_month interval/,
  },
  {
    name: 'zero-length interval',
    plan: { ...plan, interval: { kind: 'duration', iso: 'PT0S' } },
    path: 'interval.iso',
    message: /^must be longer than zero$/,
  },
  { name: 'unknown interval kind', plan: { ...plan, interval: { kind: 'weekly' } }, path: 'interval.kind', message: /calendar_month/ },
  { name: 'missing interval', plan: { ...plan, interval: undefined }, path: 'interval', message: /./ },
  { name: 'missing name', plan: { ...plan, name: undefined }, path: 'name', message: /^is required$/ },
  { name: 'code with upper case and spaces', plan: { ...plan, id: 'Pro Plan' }, path: 'id', message: /a-z, 0-9/ },
  {
    name: 'percent threshold without a hard limit',
    plan: { ...plan, limits: [{ meter: 'api_calls', soft_thresholds: [{ percent: 80 }] }] },
    path: 'limits.0.soft_thresholds.0.percent',
    message: /percent of hard_limit, which is not set/,
  },
  {
    name: 'hard limit without its behaviour',
    plan: { ...plan, limits: [{ meter: 'api_calls', hard_limit: '1000' }] },
    path: 'limits.0.at_hard_limit',
    message: /is required with hard_limit/,
  },
  {
    name: 'hard limit as a JSON number',
    plan: { ...plan, limits: [{ meter: 'api_calls', hard_limit: 1000, at_hard_limit: 'block' }] },
    path: 'limits.0.hard_limit',
    message: /JSON numbers are refused/,
  },
  {
    name: 'two limits on one meter',
    plan: { ...plan, limits: [plan.limits[0], { meter: 'api_calls', hard_limit: '5', at_hard_limit: 'allow' }] },
    path: 'limits.1.meter',
    message: /already has a limit/,
  },
  {
    name: 'limit on a meter without a charge',
    plan: { ...plan, limits: [{ meter: 'api_call', hard_limit: '5', at_hard_limit: 'allow' }] },
    path: 'limits.0.meter',
    message: /meter "api_call" has no charge in this plan/,
  },
  {
    name: 'limit on an undefined meter',
    plan: { ...plan, limits: [{ meter: 'gpu', hard_limit: '5', at_hard_limit: 'allow' }] },
    path: 'limits.0.meter',
    message: /^unknown meter "gpu": no meter with this name is defined$/,
    knownMeters: known,
  },
  {
    name: 'charge on an undefined meter',
    plan: { ...plan, charges: [{ meter: 'gpu', model: 'per_unit', unit_price: '1' }], limits: [] },
    path: 'charges.0.meter',
    message: /^unknown meter "gpu"/,
    knownMeters: known,
  },
  { name: 'misspelt key', plan: { ...plan, intervall: { kind: 'calendar_month' } }, path: '', message: /Unrecognized key: "intervall"/ },
];

describe('PlanSchema refuses invalid plans, naming the field', () => {
  for (const c of invalid) {
    test(c.name, () => {
      const result = planSchema(c.knownMeters ? { knownMeters: c.knownMeters } : {}).safeParse(c.plan);
      assert.equal(result.success, false);
      const [first] = result.error!.issues;
      assert.equal(first!.path.join('.'), c.path);
      assert.match(first!.message, c.message);
    });
  }

  test('pricing mistakes are still refused by the price plan rules it builds on', () => {
    const result = PlanSchema.safeParse({ ...plan, base_fee: '49.001' });
    assert.deepEqual(
      result.error!.issues.map((i) => i.path.join('.')),
      ['base_fee'],
    );
  });
});
