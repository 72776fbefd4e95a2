import { Decimal, ZERO, parseDecimal } from '../money';
import type { Band, Pricer } from './pricer';
import type { OverageCharge } from './schema';

/** An included allowance at no charge, then every further unit at `unit_price`. */
export const priceOverage: Pricer<OverageCharge> = (charge, quantity) => {
  const included = parseDecimal(charge.included_units);
  const bands: Band[] = [];
  const includedUsed = Decimal.min(quantity, included);
  if (includedUsed.gt(0)) {
    bands.push({ label: 'Included units', from: ZERO, to: included, units: includedUsed, unitPrice: ZERO, flatFee: ZERO });
  }
  const over = quantity.minus(included);
  if (over.gt(0)) {
    bands.push({ label: 'Overage', from: included, to: null, units: over, unitPrice: parseDecimal(charge.unit_price), flatFee: ZERO });
  }
  return bands;
};
