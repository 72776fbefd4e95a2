import { z } from 'zod';
import type { CurrencyCode } from './currencies';
import { storable, text } from './edge-schemas';
import { quote } from './input-checks';
import {
  Decimal,
  UNSIGNED_DECIMAL_PATTERN,
  ZERO,
  formatExact,
  formatMoney,
  isDecimalString,
  roundToMinor,
  type RoundingMode,
} from './money';
import { MeterSchema } from './pricing/schema';

/*
 * Taxes, the pipeline step after discounts (src/domain/invoice-pipeline.ts). A customer has tax
 * rates, each on the whole invoice or on one meter's usage. Several rates stack simply: each is a
 * percentage of the same net amount, never of another tax (no compounding). Each rate is one tax
 * line, rounded once.
 *
 * - Exclusive: the line amounts are net; a rate's tax is rate × the net of the lines it applies to.
 * - Inclusive: the line amounts already contain every rate that applies to them. For each group of
 *   lines (per meter) the tax of rate r in gross G under applicable rates R is G × r / (100 + ΣR),
 *   computed at full precision (100 significant digits, decimal.js) and rounded once per tax line.
 *   The net is then gross − the rounded taxes, so net + tax = gross to the minor unit and the
 *   rounding residue sits in the net. An inclusive tax line shows tax contained in the other
 *   lines: it does not add to the total.
 * A customer's rates are all exclusive or all inclusive: mixing them would tax a tax.
 *
 * This is the step a tax engine (Avalara, Stripe Tax, …) would replace: same input (lines with
 * their meters, the customer), same output (tax lines); an activity would call it before the
 * draft is saved and the rates below would come from its answer.
 */

export const TaxCodeSchema = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
  .regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, 'must be 1 to 64 characters of a-z, 0-9, "_", "." or "-", starting with a letter or digit')
  .meta({ example: 'vat' });

export const TaxRateSchema = z
  .strictObject({
    code: TaxCodeSchema,
    name: text({ max: 256 }).meta({ example: 'VAT 20%' }),
    percentage: z
      .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a decimal string such as "20"') })
      .regex(UNSIGNED_DECIMAL_PATTERN, {
        abort: true,
        error: (issue) => `${quote(issue.input)} is not a decimal string such as "20" or "8.875"`,
      })
      .refine((t) => isDecimalString(t) && new Decimal(t).gt(0) && new Decimal(t).lt(100), {
        error: (issue) => `must be greater than 0 and less than 100 (got ${quote(issue.input)})`,
      })
      .meta({ description: 'Percent of the net amount: "20" is 20 %.' }),
    inclusive: z.boolean().default(false).meta({ description: 'Whether the prices already contain this tax.' }),
    meter: storable(MeterSchema)
      .nullable()
      .default(null)
      .meta({ description: "Only this meter's usage is taxed; null: the whole invoice (or the base fee with `base_fee`)." }),
    base_fee: z.boolean().default(false).meta({
      description:
        'Only the charges of no meter are taxed: the base fee and the minimum-commitment true-up (net of their discounts). Not with `meter`.',
    }),
  })
  .refine((rate) => !(rate.base_fee && rate.meter !== null), {
    path: ['base_fee'],
    error: 'cannot be combined with meter: one target per rate',
  })
  .meta({ id: 'TaxRate', description: 'Immutable: to change a rate, archive it and create another.' });
export type TaxRateInput = z.input<typeof TaxRateSchema>;
export type TaxRateTerms = z.infer<typeof TaxRateSchema>;

export interface TaxRateToApply extends TaxRateTerms {
  id: string;
}

export class TaxInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TaxInputError';
  }
}

/** Every line before taxes: charges, adjustments, discounts (their meter says what they belong to). */
export interface TaxableLine {
  meter: string | null;
  amount: string;
}

export interface TaxLine {
  type: 'tax';
  taxRateId: string;
  /** The rate's meter; null when it taxes the whole invoice. */
  meter: string | null;
  inclusive: boolean;
  /** What the rate applies to: the net (exclusive) or the gross containing it (inclusive). */
  base: string;
  description: string;
  exactAmount: string;
  amount: string;
}

const appliesTo = (rate: TaxRateTerms, meter: string | null) =>
  rate.base_fee ? meter === null : rate.meter === null || rate.meter === meter;

/** One tax line per rate (in the order given) over `lines`; a rate that applies to nothing still shows a zero line. */
export function applyTaxes(input: {
  currency: CurrencyCode;
  rounding: RoundingMode;
  lines: readonly TaxableLine[];
  rates: readonly TaxRateToApply[];
}): TaxLine[] {
  const { currency, rounding, rates } = input;
  if (new Set(rates.map((r) => r.inclusive)).size > 1)
    throw new TaxInputError('tax rates of one customer must be all exclusive or all inclusive');
  const groups = new Map<string | null, Decimal>();
  for (const line of input.lines) groups.set(line.meter, (groups.get(line.meter) ?? ZERO).plus(line.amount));
  return rates.map((rate) => {
    let base = ZERO;
    let exact = ZERO;
    for (const [meter, amount] of groups) {
      if (!appliesTo(rate, meter)) continue;
      base = base.plus(amount);
      const divisor = rate.inclusive
        ? rates.filter((r) => appliesTo(r, meter)).reduce((sum, r) => sum.plus(r.percentage), new Decimal(100))
        : new Decimal(100);
      exact = exact.plus(amount.times(rate.percentage).div(divisor));
    }
    const scope = rate.base_fee ? ' on the base fee' : rate.meter === null ? '' : ` on ${rate.meter}`;
    const how = rate.inclusive ? 'included in' : 'of';
    return {
      type: 'tax' as const,
      taxRateId: rate.id,
      meter: rate.meter,
      inclusive: rate.inclusive,
      base: formatMoney(base, currency),
      description: `${rate.name} (${rate.percentage}%${scope}) ${how} ${formatMoney(base, currency)} ${currency}`,
      exactAmount: formatExact(exact),
      amount: formatMoney(roundToMinor(exact, currency, rounding), currency),
    };
  });
}
