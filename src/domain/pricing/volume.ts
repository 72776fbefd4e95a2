import type { Pricer } from './pricer';
import type { VolumeCharge } from './schema';
import { tierRanges } from './tiers';

/**
 * All units at the price of the tier the total falls in (`up_to` inclusive: exactly 10 units
 * fall in the tier ending at 10), plus that tier's flat fee. Zero usage falls in no tier and costs
 * nothing, even when the first tier has a flat fee: a meter that was not used is not billed.
 */
export const priceVolume: Pricer<VolumeCharge> = (charge, quantity) => {
  if (quantity.isZero()) return [];
  const tier = tierRanges(charge.tiers).find((range) => range.to === null || quantity.lte(range.to));
  // The schema guarantees an open-ended last tier; a plan that skipped validation fails loudly.
  if (!tier)
    throw new RangeError(
      `volume charge on "${charge.meter}" has no tier for ${quantity.toFixed()} units: the last tier must be open-ended`,
    );
  return [
    { label: `${tier.label}, all units`, from: tier.from, to: tier.to, units: quantity, unitPrice: tier.unitPrice, flatFee: tier.flatFee },
  ];
};
