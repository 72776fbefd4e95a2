import { createPlan } from '../../src/plans/store';
import type { Pool } from '../../src/db/pool';
import { planSchema } from '../../src/domain/plan';
import { createMeter } from '../../src/meters/store';

/**
 * The catalog the period-close and reconciliation workflow tests bill on: meter `api_calls`
 * (count) and plan `hourly` (PT1H periods, base fee 1.00, graduated 0.015 up to 100 calls, then
 * 0.0125). Returns the meter's id.
 */
export async function seedHourlyPlan(pool: Pool): Promise<string> {
  const { meter } = await createMeter(
    pool,
    { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} },
    'system',
  );
  const plan = planSchema({ knownMeters: new Set(['api_calls']) }).parse({
    id: 'hourly',
    name: 'Hourly',
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
    interval: { kind: 'duration', iso: 'PT1H' },
  });
  await createPlan(pool, plan, 'system');
  return meter.id;
}
