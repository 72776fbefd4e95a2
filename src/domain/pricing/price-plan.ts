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
 * How to price one segment of a period split by plan changes (src/domain/segment-pricing.ts):
 * the share of the fixed amounts it bills, and per meter the units used earlier in the period
 * that its tiers continue from (a shared ladder).
 */
export interface SegmentTerms {
  /** The segment's part of a fixed amount of the period (base fee, minimum commitment), exact. */
  prorate(amount: Decimal): Decimal;
  /** Units of earlier segments the meter's tiers continue from; absent: the ladder starts at zero. */
  usedEarlier: Readonly<Record<string, Decimal>>;
  /** Shown after "Base fee" and "Minimum commitment" when the amount is a part, e.g. "(prorated: 12 of 30 days)". */
  fixedNote: string;
}

/** The bands of `earlier` units as a deduction: same rows, units and flat fees negated, so each row still adds up. */
function deductedRows(charge: Charge, earlier: Decimal): BreakdownRow[] {
  return bandsOf(charge, earlier).map((band) =>
    breakdownRow({
      ...band,
      label: `Less ${band.label} (used earlier in the period)`,
      units: band.units.neg(),
      flatFee: band.flatFee.neg(),
    }),
  );
}

/**
 * Prices one period of usage under a plan. Steps, in order: the base fee; each charge through its
 * model at full precision (a meter absent from `usage` is priced at 0); then the minimum
 * commitment, whose true-up tops the rounded base fee and charges up to the commitment. Each line
 * is rounded once to the currency's minor unit and the total is the sum of the rounded lines, so
 * the invoice adds up exactly as shown. With `segment`, fixed amounts are its part of them and a
 * charge on a shared ladder bills price(earlier + usage) − price(earlier): the tiers continue.
 */
export function pricePlan(plan: PricePlan, usage: Usage, segment?: SegmentTerms): PricedPlan {
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

  const fixed = (amount: string) => (segment ? segment.prorate(parseDecimal(amount)) : parseDecimal(amount));
  const note = segment?.fixedNote ? ` ${segment.fixedNote}` : '';
  const baseFee =
    plan.base_fee === undefined ? ZERO : addLine({ type: 'base_fee', ...fixedLine, description: `Base fee${note}` }, fixed(plan.base_fee));

  let charges = ZERO;
  for (const charge of plan.charges) {
    const quantity = parseQuantity(charge.meter, usage[charge.meter] ?? 0);
    const earlier = segment?.usedEarlier[charge.meter] ?? ZERO;
    const continued = earlier.gt(0) && quantity.gt(0);
    const bands = bandsOf(charge, continued ? earlier.plus(quantity) : quantity);
    const deducted = continued ? bandsOf(charge, earlier) : [];
    const exact = [...bands.map(bandAmount), ...deducted.map((band) => bandAmount(band).neg())].reduce((sum, a) => sum.plus(a), ZERO);
    const onLadder = continued ? `, continuing the tiers after ${formatExact(earlier)} units used earlier in the period` : '';
    const line = {
      type: 'usage' as const,
      meter: charge.meter,
      model: charge.model,
      quantity: formatExact(quantity),
      description: `${charge.meter}: ${formatExact(quantity)} units, ${modelNames[charge.model]}${bands.length === 0 ? ' (no usage)' : onLadder}`,
      breakdown: [...bands.map(breakdownRow), ...(continued ? deductedRows(charge, earlier) : [])],
    };
    charges = charges.plus(addLine(line, exact));
  }

  let trueUp = ZERO;
  if (plan.minimum_commitment !== undefined) {
    const commitment = fixed(plan.minimum_commitment);
    // A prorated commitment can have many digits; the text shows it to the cent, the true-up stays exact.
    const shownCommitment = (amount: Decimal) =>
      note ? formatMoney(roundToMinor(amount, currency, rounding), currency) : formatExact(amount);
    const invoiced = baseFee.plus(charges);
    if (commitment.gt(invoiced)) {
      const description = `Minimum commitment ${shownCommitment(commitment)} ${currency}${note}; base fee and charges come to ${formatMoney(invoiced, currency)}`;
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
