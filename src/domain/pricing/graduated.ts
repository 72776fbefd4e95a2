import { Decimal } from '../money';
import type { Pricer } from './pricer';
import type { GraduatedCharge } from './schema';
import { tierRanges } from './tiers';

/**
 * Each tier's units at that tier's price. A tier is entered once usage exceeds its lower bound,
 * and only entered tiers charge their flat fee: 5 units never enter "above 5 up to 10".
 */
export const priceGraduated: Pricer<GraduatedCharge> = (charge, quantity) =>
  tierRanges(charge.tiers)
    .filter((tier) => quantity.gt(tier.from))
    .map((tier) => ({
      label: tier.label,
      from: tier.from,
      to: tier.to,
      units: (tier.to === null ? quantity : Decimal.min(quantity, tier.to)).minus(tier.from),
      unitPrice: tier.unitPrice,
      flatFee: tier.flatFee,
    }));
