import { createPlan } from '../../src/plans/store';
import type { Pool } from '../../src/db/pool';
import { planSchema } from '../../src/domain/plan';
import { createMeter } from '../../src/meters/store';

/**
 * The catalog the period-close and reconciliation workflow tests bill on: meter `api_calls`
 * (count) and plan `hourly` (PT1H periods, base fee 1.00, graduated 0.015 up to 100 calls, then
 * 0.0125). Returns the meter's id.
 */
export const seedHourlyPlan = (pool: Pool): Promise<string> => seedPlan(pool, { id: 'hourly', name: 'Hourly', period: 'PT1H' });

/** The same catalog with the plan under another id, name and period length (an ISO 8601 duration). */
export async function seedPlan(pool: Pool, plan: { id: string; name: string; period: string }): Promise<string> {
  const { meter } = await createMeter(
    pool,
    { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} },
    'system',
  );
  const parsed = planSchema({ knownMeters: new Set(['api_calls']) }).parse({
    id: plan.id,
    name: plan.name,
    currency: 'USD',
    base_fee: '1.00',
    charges: [
      {
        meter: 'api_calls',
        model: 'graduated',
        tiers: [
          { up_to: '100', unit_price: '0.015' },
          { up_to: null, unit_price: '0.0125' },
        ],
      },
    ],
    interval: { kind: 'duration', iso: plan.period },
  });
  await createPlan(pool, parsed, 'system');
  return meter.id;
}
