import { ZERO, formatExact, formatMoney, parseDecimal, roundToMinor, type Decimal } from '../money';
import { priceGraduated } from './graduated';
import { priceOverage } from './overage';
import { pricePackage } from './package';
import { pricePerUnit } from './per-unit';
import type { Band, Pricer } from './pricer';
import type { BreakdownRow, Charge, ChargeModel, PriceLine, PricedPlan, PricePlan, Usage } from './schema';
import { priceVolume } from './volume';

/** A plan and usage that cannot be priced together; raised only for input that skipped validation. */
export class PricingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PricingError';
  }
}

/** One pricer per model: adding a model to the schema does not compile until it is priced here. */
const pricers: { [M in ChargeModel]: Pricer<Extract<Charge, { model: M }>> } = {
  per_unit: pricePerUnit,
  graduated: priceGraduated,
  volume: priceVolume,
  package: pricePackage,
  overage: priceOverage,
};

const modelNames: Record<ChargeModel, string> = {
  per_unit: 'per unit',
  graduated: 'graduated tiers',
  volume: 'volume tiers',
  package: 'packages',
  overage: 'included allowance, then overage',
};

function bandsOf(charge: Charge, quantity: Decimal): Band[] {
  // TypeScript cannot relate `charge.model` to the pricer it selects; `pricers` above is what
  // proves each model is priced with its own charge type.
  const pricer = pricers[charge.model] as Pricer<Charge>;
  return pricer(charge, quantity);
}

function bandAmount(band: Band): Decimal {
  return band.units.times(band.unitPrice).plus(band.flatFee);
}

function breakdownRow(band: Band): BreakdownRow {
  const flat = band.flatFee.isZero() ? '' : ` + ${formatExact(band.flatFee)} flat fee`;
  return {
    description: `${band.label}: ${formatExact(band.units)} × ${formatExact(band.unitPrice)}${flat}`,
    from: formatExact(band.from),
    to: band.to === null ? null : formatExact(band.to),
    units: formatExact(band.units),
    unit_price: formatExact(band.unitPrice),
    flat_fee: formatExact(band.flatFee),
    amount: formatExact(bandAmount(band)),
  };
}

/** Meters in `usage` that no charge of the plan prices: billing them nowhere would lose revenue silently. */
export function unpricedMeters(plan: Pick<PricePlan, 'charges'>, usage: Usage): string[] {
  const priced = new Set(plan.charges.map((charge) => charge.meter));
  return Object.keys(usage).filter((meter) => !priced.has(meter));
}

function parseQuantity(meter: string, value: string | number): Decimal {
  const quantity = parseDecimal(value);
  if (quantity.isNegative() && !quantity.isZero())
    throw new PricingError(`usage for meter "${meter}" is negative (${formatExact(quantity)})`);
  return quantity;
}

/**
 * Prices one period of usage under a plan. Steps, in order: the base fee; each charge through its
 * model at full precision (a meter absent from `usage` is priced at 0); then the minimum
 * commitment, whose true-up tops the rounded base fee and charges up to the commitment. Each line
 * is rounded once to the currency's minor unit and the total is the sum of the rounded lines, so
 * the invoice adds up exactly as shown.
 */
export function pricePlan(plan: PricePlan, usage: Usage): PricedPlan {
  const unpriced = unpricedMeters(plan, usage);
  if (unpriced.length > 0) throw new PricingError(`the plan has no charge for usage on: ${unpriced.join(', ')}`);
  const { currency } = plan;
  const rounding = plan.rounding ?? 'half_up';
  const lines: PriceLine[] = [];

  /** Appends a line, rounding its exact amount once, and returns the rounded amount. */
  const addLine = (line: Omit<PriceLine, 'exact_amount' | 'amount'>, exact: Decimal): Decimal => {
    const rounded = roundToMinor(exact, currency, rounding);
    lines.push({ ...line, exact_amount: formatExact(exact), amount: formatMoney(rounded, currency) });
    return rounded;
  };
  const fixedLine = { meter: null, model: null, quantity: null, breakdown: [] };

  const baseFee =
    plan.base_fee === undefined ? ZERO : addLine({ type: 'base_fee', ...fixedLine, description: 'Base fee' }, parseDecimal(plan.base_fee));

  let charges = ZERO;
  for (const charge of plan.charges) {
    const quantity = parseQuantity(charge.meter, usage[charge.meter] ?? 0);
    const bands = bandsOf(charge, quantity);
    const exact = bands.reduce((sum, band) => sum.plus(bandAmount(band)), ZERO);
    const line = {
      type: 'usage' as const,
      meter: charge.meter,
      model: charge.model,
      quantity: formatExact(quantity),
      description: `${charge.meter}: ${formatExact(quantity)} units, ${modelNames[charge.model]}${bands.length === 0 ? ' (no usage)' : ''}`,
      breakdown: bands.map(breakdownRow),
    };
    charges = charges.plus(addLine(line, exact));
  }

  let trueUp = ZERO;
  if (plan.minimum_commitment !== undefined) {
    const commitment = parseDecimal(plan.minimum_commitment);
    const invoiced = baseFee.plus(charges);
    if (commitment.gt(invoiced)) {
      const description = `Minimum commitment ${formatExact(commitment)} ${currency}; base fee and charges come to ${formatMoney(invoiced, currency)}`;
      trueUp = addLine({ type: 'minimum_commitment_true_up', ...fixedLine, description }, commitment.minus(invoiced));
    }
  }

  return {
    plan_id: plan.id ?? null,
    currency,
    rounding,
    lines,
    totals: {
      base_fee: formatMoney(baseFee, currency),
      charges: formatMoney(charges, currency),
      minimum_commitment_true_up: formatMoney(trueUp, currency),
      total: formatMoney(baseFee.plus(charges).plus(trueUp), currency),
    },
  };
}
