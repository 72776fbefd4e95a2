import type { Clock } from '../clock';
import type { Pool } from '../db/pool';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import { createClosePeriod } from './close-period';
import { createNotifyThreshold } from './notify-threshold';
import { createSetEntitlement } from './set-entitlement';

/** Every activity the worker registers, built from its dependencies (tests hand in their own). */
export function createActivities(deps: { pool: Pool; clock: Clock; webhookTimeoutMs: number }): BillingPeriodActivities {
  return {
    notifyThreshold: createNotifyThreshold({ pool: deps.pool, clock: deps.clock, timeoutMs: deps.webhookTimeoutMs }),
    setEntitlement: createSetEntitlement({ pool: deps.pool, clock: deps.clock }),
    closePeriod: createClosePeriod({ pool: deps.pool, clock: deps.clock }),
  };
}
