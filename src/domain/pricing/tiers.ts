import { ZERO, formatExact, parseDecimal, type Decimal } from '../money';
import type { Tier } from './schema';

export interface TierRange {
  label: string;
  from: Decimal;
  to: Decimal | null;
  unitPrice: Decimal;
  flatFee: Decimal;
}

/** Tiers as ranges (from, to]: each starts where the previous one's inclusive `up_to` ends. */
export function tierRanges(tiers: readonly Tier[]): TierRange[] {
  let from = ZERO;
  return tiers.map((tier, i) => {
    const to = tier.up_to === null ? null : parseDecimal(tier.up_to);
    const range = {
      label: `Tier ${i + 1} (above ${formatExact(from)}${to === null ? '' : ` up to ${formatExact(to)}`})`,
      from,
      to,
      unitPrice: parseDecimal(tier.unit_price),
      flatFee: tier.flat_fee === undefined ? ZERO : parseDecimal(tier.flat_fee),
    };
    if (to !== null) from = to;
    return range;
  });
}
