import { Decimal, ZERO, formatExact, parseDecimal } from '../money';
import type { Band, Pricer } from './pricer';
import type { PackageCharge } from './schema';

/**
 * A price per started package: ceil(max(0, quantity − free_units) / package_size) × package_price.
 * The ceiling is taken from an integer division and an exact multiplication, never from a
 * rounded quotient, so even 20-digit quantities land on the right package count.
 */
export const pricePackage: Pricer<PackageCharge> = (charge, quantity) => {
  const free = charge.free_units === undefined ? ZERO : parseDecimal(charge.free_units);
  const size = parseDecimal(charge.package_size);
  const bands: Band[] = [];
  const freeUsed = Decimal.min(quantity, free);
  if (freeUsed.gt(0)) {
    bands.push({ label: 'Free units', from: ZERO, to: free, units: freeUsed, unitPrice: ZERO, flatFee: ZERO });
  }
  const billable = quantity.minus(free);
  if (billable.gt(0)) {
    const whole = billable.dividedToIntegerBy(size);
    const packages = whole.times(size).eq(billable) ? whole : whole.plus(1);
    bands.push({
      label: `Started packages of ${formatExact(size)} units (${formatExact(billable)} billable units)`,
      from: free,
      to: null,
      units: packages,
      unitPrice: parseDecimal(charge.package_price),
      flatFee: ZERO,
    });
  }
  return bands;
};
