import { z } from 'zod';
import { currencyCodes, isCurrency, minorUnits } from '../currencies';
import { record, storable, text } from '../edge-schemas';
import { quote } from '../input-checks';
import { Decimal, UNSIGNED_DECIMAL_PATTERN, ZERO, isDecimalString, roundingModes, type Decimal as DecimalValue } from '../money';

/*
 * The plan and the priced result as they travel in JSON: in the API, in Postgres and in workflow
 * payloads. Amounts are decimal strings, never JSON numbers. Objects are strict so that a misspelt
 * key (`flatfee`) is refused instead of being priced as if it were absent.
 */

export const chargeModels = ['per_unit', 'graduated', 'volume', 'package', 'overage'] as const;
export type ChargeModel = (typeof chargeModels)[number];

/** Refinements still run after a format failure, so they re-check before reading a value. */
function decimalOrUndefined(text: string | null): DecimalValue | undefined {
  return text !== null && isDecimalString(text) ? new Decimal(text) : undefined;
}

/** Prices, fees and quantities: never negative, and never a JSON number. */
const NonNegativeDecimal = z
  .string({
    error: (issue) =>
      issue.input === undefined
        ? 'is required'
        : 'must be a decimal string such as "12.50"; JSON numbers are refused so that binary floating point never touches money',
  })
  .regex(UNSIGNED_DECIMAL_PATTERN, {
    abort: true,
    error: (issue) =>
      typeof issue.input === 'string' && isDecimalString(issue.input)
        ? `must not be negative (got ${quote(issue.input)})`
        : `${quote(issue.input)} is not a decimal string: use plain digits such as "12.50" (at most 20 digits on each side of the point; no exponent, NaN or Infinity)`,
  });

const PositiveDecimal = NonNegativeDecimal.refine((text) => new Decimal(text).gt(0), {
  error: (issue) => `must be greater than 0 (got ${quote(issue.input)})`,
});

export const CurrencySchema = z
  .enum(currencyCodes, {
    error: (issue) => `unknown currency ${quote(issue.input)}: expected an active ISO 4217 code in upper case, such as USD, EUR or JPY`,
  })
  .meta({ id: 'Currency', description: 'Active ISO 4217 currency code.' });

export const MeterSchema = storable(
  z
    .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string naming a meter') })
    .min(1, 'must not be empty')
    .max(200, 'must be at most 200 characters'),
);

export const TierSchema = z
  .strictObject({
    up_to: NonNegativeDecimal.nullable().meta({
      description:
        'Inclusive upper bound of the tier, in units; null on the last, open-ended tier. The tier starts just above the previous up_to (or 0).',
    }),
    unit_price: NonNegativeDecimal,
    flat_fee: NonNegativeDecimal.optional().meta({
      description: 'Charged once when usage enters the tier (graduated) or falls in it (volume).',
    }),
  })
  .meta({ id: 'Tier' });
export type Tier = z.infer<typeof TierSchema>;

const TiersSchema = z
  .array(TierSchema)
  .min(1, 'at least one tier is required')
  .superRefine((tiers, ctx) => {
    let floor = ZERO;
    let floorText = '0';
    tiers.forEach((tier, i) => {
      const path = [i, 'up_to'];
      const last = i === tiers.length - 1;
      if (tier.up_to === null) {
        if (!last)
          ctx.addIssue({
            code: 'custom',
            path,
            message: `only the last tier may be open-ended (up_to: null); tier ${i + 1} of ${tiers.length} is not the last`,
          });
        return;
      }
      if (last) {
        ctx.addIssue({
          code: 'custom',
          path,
          message: `the last tier must be open-ended (up_to: null); with up_to ${quote(tier.up_to)} usage above it would have no price`,
        });
      }
      const upTo = decimalOrUndefined(tier.up_to);
      if (!upTo) return;
      if (upTo.lte(floor)) {
        const message =
          i === 0
            ? 'must be greater than 0'
            : `must be greater than the previous tier's up_to (${JSON.stringify(floorText)}): tiers must increase and may not overlap`;
        ctx.addIssue({ code: 'custom', path, message });
        return;
      }
      floor = upTo;
      floorText = tier.up_to;
    });
  });

export const PerUnitChargeSchema = z
  .strictObject({ meter: MeterSchema, model: z.literal('per_unit'), unit_price: NonNegativeDecimal })
  .meta({ id: 'PerUnitCharge', description: 'Every unit at one price.' });
export type PerUnitCharge = z.infer<typeof PerUnitChargeSchema>;

export const GraduatedChargeSchema = z
  .strictObject({ meter: MeterSchema, model: z.literal('graduated'), tiers: TiersSchema })
  .meta({ id: 'GraduatedCharge', description: "Each tier's units at that tier's price, plus the flat fee of every tier entered." });
export type GraduatedCharge = z.infer<typeof GraduatedChargeSchema>;

export const VolumeChargeSchema = z.strictObject({ meter: MeterSchema, model: z.literal('volume'), tiers: TiersSchema }).meta({
  id: 'VolumeCharge',
  description: "All units at the price of the tier the total falls in, plus that tier's flat fee. Zero usage costs nothing.",
});
export type VolumeCharge = z.infer<typeof VolumeChargeSchema>;

export const PackageChargeSchema = z
  .strictObject({
    meter: MeterSchema,
    model: z.literal('package'),
    package_size: PositiveDecimal.meta({ description: 'Units per package.' }),
    package_price: NonNegativeDecimal.meta({ description: 'Price of each started package.' }),
    free_units: NonNegativeDecimal.optional().meta({ description: 'Units given away before the first package starts.' }),
  })
  .meta({ id: 'PackageCharge', description: 'ceil(max(0, quantity − free_units) / package_size) × package_price.' });
export type PackageCharge = z.infer<typeof PackageChargeSchema>;

export const OverageChargeSchema = z
  .strictObject({
    meter: MeterSchema,
    model: z.literal('overage'),
    included_units: NonNegativeDecimal.meta({ description: 'Units included at no charge.' }),
    unit_price: NonNegativeDecimal.meta({ description: 'Price of each unit above the included units.' }),
  })
  .meta({ id: 'OverageCharge', description: 'An included allowance, then a price per unit.' });
export type OverageCharge = z.infer<typeof OverageChargeSchema>;

export const ChargeSchema = z
  .discriminatedUnion('model', [PerUnitChargeSchema, GraduatedChargeSchema, VolumeChargeSchema, PackageChargeSchema, OverageChargeSchema])
  .meta({ id: 'PlanCharge' });
export type Charge = z.infer<typeof ChargeSchema>;

/** Fixed amounts are money, so they may not carry more digits than the currency has. */
function checkMinorDigits(
  plan: { currency: string },
  field: 'base_fee' | 'minimum_commitment',
  value: string | undefined,
  ctx: z.RefinementCtx,
) {
  // An unknown currency is reported on its own field; there are no minor units to compare with.
  if (!isCurrency(plan.currency)) return;
  const amount = value === undefined ? undefined : decimalOrUndefined(value);
  const digits = minorUnits(plan.currency);
  if (amount && amount.decimalPlaces() > digits) {
    ctx.addIssue({
      code: 'custom',
      path: [field],
      message: `${JSON.stringify(value)} has more decimal places than ${plan.currency} allows (${digits})`,
    });
  }
}

/** How a plan bills fixed amounts (base fee, minimum commitment) for a segment shorter than the period. */
export const prorations = ['prorated', 'full', 'none'] as const;
export type Proration = (typeof prorations)[number];

/** Whether tiers continue from the usage of earlier segments of the period, or restart in each segment. */
export const tierLadders = ['shared', 'per_segment'] as const;
export type TierLadder = (typeof tierLadders)[number];

export const PricePlanSchema = z
  .strictObject({
    id: text({ max: 128 }).optional(),
    currency: CurrencySchema,
    rounding: z.enum(roundingModes).optional().meta({ description: 'How each line is rounded to the minor unit; half_up unless stated.' }),
    base_fee: NonNegativeDecimal.optional().meta({ description: 'Fixed fee per period, in the currency.' }),
    minimum_commitment: NonNegativeDecimal.optional().meta({
      description: 'Minimum invoice total per period (base fee plus charges); a shortfall is billed as a true-up line.',
    }),
    proration: z
      .enum(prorations)
      .optional()
      .meta({
        description:
          'How the base fee and the minimum commitment are billed for a segment shorter than the period (a plan change, a ' +
          'cancellation): prorated to the millisecond unless stated; `full` bills the whole amount; `none` bills nothing.',
      }),
    tiers_across_segments: z
      .enum(tierLadders)
      .optional()
      .meta({
        description:
          'When a plan change splits a period: `shared` (the default) continues the tiers from the usage of the earlier segments ' +
          'of the period, so a plan change never makes a customer climb the ladder again; `per_segment` starts them at zero.',
      }),
    charges: z.array(ChargeSchema),
  })
  .superRefine((plan, ctx) => {
    checkMinorDigits(plan, 'base_fee', plan.base_fee, ctx);
    checkMinorDigits(plan, 'minimum_commitment', plan.minimum_commitment, ctx);
    const seen = new Set<string>();
    plan.charges.forEach((charge, i) => {
      if (seen.has(charge.meter)) {
        ctx.addIssue({
          code: 'custom',
          path: ['charges', i, 'meter'],
          message: `meter ${JSON.stringify(charge.meter)} already has a charge; one charge per meter`,
        });
      }
      seen.add(charge.meter);
    });
  })
  .meta({ id: 'PricePlan' });
export type PricePlan = z.infer<typeof PricePlanSchema>;

/**
 * The plan schema, refusing charges on meters outside `knownMeters` (the meters the account has
 * defined). Without it a typo in a meter name would price a meter that never receives usage.
 */
export function pricePlanSchema(options: { knownMeters?: ReadonlySet<string> } = {}) {
  const { knownMeters } = options;
  if (!knownMeters) return PricePlanSchema;
  return PricePlanSchema.superRefine((plan, ctx) => {
    plan.charges.forEach((charge, i) => {
      if (!knownMeters.has(charge.meter)) {
        ctx.addIssue({
          code: 'custom',
          path: ['charges', i, 'meter'],
          message: `unknown meter ${JSON.stringify(charge.meter)}: no meter with this name is defined`,
        });
      }
    });
  });
}

/** A quantity: a decimal string (fractions allowed, e.g. GB-hours) or a safe integer. */
export const QuantitySchema = z
  .union([NonNegativeDecimal, z.int().nonnegative(`must not be negative`)], {
    error: 'must be a non-negative decimal string such as "12.5" or a non-negative integer',
  })
  .meta({ id: 'Quantity', description: 'Non-negative decimal string, or a safe integer; both give identical results.' });

export const UsageSchema = record(MeterSchema, QuantitySchema).meta({
  id: 'UsageByMeter',
  description: 'Quantity used per meter in the period. A charge whose meter is absent is priced at 0.',
});
export type Usage = z.infer<typeof UsageSchema>;

export const BreakdownRowSchema = z
  .object({
    description: z.string(),
    from: z.string().meta({ description: 'The band covers usage above this many units…' }),
    to: z.string().nullable().meta({ description: '…up to and including this many; null when open-ended.' }),
    units: z.string().meta({ description: 'Units billed in this row (packages, for the package model).' }),
    unit_price: z.string(),
    flat_fee: z.string(),
    amount: z.string().meta({ description: 'units × unit_price + flat_fee, exact.' }),
  })
  .meta({ id: 'PriceBreakdownRow' });
export type BreakdownRow = z.infer<typeof BreakdownRowSchema>;

const lineTypes = ['base_fee', 'usage', 'minimum_commitment_true_up'] as const;

const PriceLineSchema = z
  .object({
    type: z.enum(lineTypes),
    meter: z.string().nullable(),
    model: z.enum(chargeModels).nullable(),
    quantity: z.string().nullable(),
    description: z.string(),
    breakdown: z.array(BreakdownRowSchema),
    exact_amount: z.string().meta({ description: 'Sum of the breakdown at full precision, unrounded.' }),
    amount: z.string().meta({ description: "exact_amount rounded once to the currency's minor unit." }),
  })
  .meta({ id: 'PriceLine' });
export type PriceLine = z.infer<typeof PriceLineSchema>;

export const PricedPlanSchema = z
  .object({
    plan_id: z.string().nullable(),
    currency: CurrencySchema,
    rounding: z.enum(roundingModes),
    lines: z.array(PriceLineSchema),
    totals: z.object({
      base_fee: z.string(),
      charges: z.string(),
      minimum_commitment_true_up: z.string(),
      total: z.string().meta({ description: 'Sum of the rounded line amounts, so the invoice adds up.' }),
    }),
  })
  .meta({ id: 'PricedPlan' });
export type PricedPlan = z.infer<typeof PricedPlanSchema>;
