import { ZERO, parseDecimal } from '../money';
import type { Pricer } from './pricer';
import type { PerUnitCharge } from './schema';

/** Every unit at one price. */
export const pricePerUnit: Pricer<PerUnitCharge> = (charge, quantity) =>
  quantity.isZero()
    ? []
    : [{ label: 'All units', from: ZERO, to: null, units: quantity, unitPrice: parseDecimal(charge.unit_price), flatFee: ZERO }];
