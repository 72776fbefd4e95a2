import type { Decimal } from '../money';

/**
 * One priced band of a charge: `units` at `unitPrice` plus `flatFee`, covering usage above `from`
 * up to and including `to` (null: open-ended). A charge's amount is always the sum of its bands,
 * so the breakdown an invoice shows adds up to the line by construction.
 */
export interface Band {
  label: string;
  from: Decimal;
  to: Decimal | null;
  units: Decimal;
  unitPrice: Decimal;
  flatFee: Decimal;
}

/**
 * A charge model: exact bands for a quantity, never rounded. Zero usage yields no bands, hence an
 * amount of zero: no model charges a flat fee for a meter that was not used.
 */
export type Pricer<C> = (charge: C, quantity: Decimal) => Band[];
