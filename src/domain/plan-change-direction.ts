import { Decimal } from './money';
import { pricePlan } from './pricing/price-plan';
import type { PricePlan, Usage } from './pricing/schema';

/*
 * Whether a plan change is an upgrade or a downgrade, which decides when it takes effect by
 * default: an upgrade at once (the customer wants more now), a downgrade at the period end (the
 * customer keeps what the period was paid for). A higher base fee is an upgrade, a lower one a
 * downgrade; with equal base fees, the plan that prices the period's usage so far higher is the
 * upgrade. A change that is neither (same price for the same usage) counts as an upgrade: nothing
 * is lost by applying it at once.
 */

export type ChangeDirection = 'upgrade' | 'downgrade';

/** What the plan's charges make of the usage so far (meters it does not charge are ignored). */
function priceOfUsage(plan: PricePlan, usage: Usage): Decimal {
  const charged = new Set(plan.charges.map((c) => c.meter));
  const relevant = Object.fromEntries(Object.entries(usage).filter(([meter]) => charged.has(meter)));
  const charges: PricePlan = { currency: plan.currency, charges: plan.charges, ...(plan.rounding ? { rounding: plan.rounding } : {}) };
  return new Decimal(pricePlan(charges, relevant).totals.total);
}

export function changeDirection(from: PricePlan, to: PricePlan, usage: Usage): ChangeDirection {
  const fromFee = new Decimal(from.base_fee ?? 0);
  const toFee = new Decimal(to.base_fee ?? 0);
  if (!fromFee.eq(toFee)) return toFee.gt(fromFee) ? 'upgrade' : 'downgrade';
  return priceOfUsage(to, usage).lt(priceOfUsage(from, usage)) ? 'downgrade' : 'upgrade';
}
