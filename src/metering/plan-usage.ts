import type { Queryable } from '../db/transaction';
import type { Plan } from '../domain/plan';
import { getMeter } from '../meters/store';
import { queryUsage } from './usage-query';

/** A meter that a plan charges or limits is not defined: stored data no retry can fix. */
export class UnknownPlanMeterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnknownPlanMeterError';
  }
}

/** Meters the plans charge or limit, sorted. */
export const metersOfPlans = (plans: readonly Plan[]) =>
  [...new Set(plans.flatMap((p) => [...p.charges.map((c) => c.meter), ...p.limits.map((l) => l.meter)]))].sort();

/**
 * Exact usage of every meter the plans charge or limit, over [from, to), from the stored events
 * (never the real-time counters): what invoices bill and plan changes compare. Aggregations with
 * no events (max, latest) count as 0.
 */
export async function measurePlanUsage(
  db: Queryable,
  plans: readonly Plan[],
  customerId: string,
  from: Date,
  to: Date,
): Promise<Record<string, string>> {
  const usage: Record<string, string> = {};
  for (const code of metersOfPlans(plans)) {
    const meter = await getMeter(db, code);
    if (!meter) throw new UnknownPlanMeterError(`meter ${code} of plan ${plans.map((p) => p.id).join(', ')} does not exist`);
    usage[code] = (await queryUsage(db, { customerId, meter, from, to })).value ?? '0';
  }
  return usage;
}
