import { z } from 'zod';
import { isCurrency, minorUnits, type CurrencyCode } from './currencies';
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
import { CurrencySchema, MeterSchema } from './pricing/schema';

/*
 * Discounts, the pipeline step after the minimum commitment and before taxes
 * (src/domain/invoice-pipeline.ts). A coupon takes a percentage or a fixed amount off the period's
 * charges (base fee, usage, minimum-commitment true-up), optionally only off some meters' usage.
 * Lines of other periods (late-usage adjustments) carry their own period's terms and are not
 * discounted here. A discount never takes a charge below zero: each coupon works on what earlier
 * coupons left, and a fixed amount larger than that is capped.
 *
 * Discount lines are kept per meter (null: the base fee and true-up), so the taxes step can tax
 * each meter's net amount when a tax rate applies to one meter only.
 */

export const CouponCodeSchema = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/,
    'must be 1 to 64 characters of A-Z, a-z, 0-9, "_", "." or "-", starting with a letter or digit',
  )
  .meta({ example: 'LAUNCH20' });

const decimalText = (what: string) =>
  z
    .string({ error: (issue) => (issue.input === undefined ? 'is required' : `must be a decimal string such as "${what}"`) })
    .regex(UNSIGNED_DECIMAL_PATTERN, {
      abort: true,
      error: (issue) => `${quote(issue.input)} is not a non-negative decimal string such as "${what}"`,
    });

/** A percentage in (0, 100], as a decimal string: "12.5" is 12.5 %. */
export const PercentOffSchema = decimalText('12.5').refine((t) => isDecimalString(t) && new Decimal(t).gt(0) && new Decimal(t).lte(100), {
  error: (issue) => `must be greater than 0 and at most 100 (got ${quote(issue.input)})`,
});

export const CouponDiscountSchema = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('percentage'), percent_off: PercentOffSchema }),
    z.strictObject({
      type: z.literal('fixed_amount'),
      amount_off: decimalText('10.00').refine((t) => isDecimalString(t) && new Decimal(t).gt(0), { error: 'must be greater than 0' }),
      currency: CurrencySchema.meta({ description: 'Only invoices in this currency are discounted.' }),
    }),
  ])
  .meta({ id: 'CouponDiscount' });

export const CouponDurationSchema = z
  .discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('once') }),
    z.strictObject({ kind: z.literal('repeating'), periods: z.int().min(1).max(1200) }),
    z.strictObject({ kind: z.literal('forever') }),
  ])
  .meta({
    id: 'CouponDuration',
    description: 'How many finalized invoices an application of the coupon discounts: one, `periods`, or all.',
  });

export const CouponSchema = z
  .strictObject({
    code: CouponCodeSchema,
    name: text({ max: 256 }),
    discount: CouponDiscountSchema,
    duration: CouponDurationSchema,
    meters: z.array(storable(MeterSchema)).min(1).max(100).optional().meta({
      description:
        "Only these meters' usage is discounted (and the base fee with `base_fee`); absent with `base_fee` absent: the base fee, all usage and the minimum-commitment true-up.",
    }),
    base_fee: z.literal(true).optional().meta({
      description:
        'Discount the charges of no meter: the base fee and the minimum-commitment true-up (one group). Alone: only those; with `meters`: those and the meters.',
    }),
  })
  .superRefine((coupon, ctx) => {
    const d = coupon.discount;
    if (d?.type === 'fixed_amount' && isCurrency(d.currency) && isDecimalString(d.amount_off ?? '')) {
      const digits = minorUnits(d.currency);
      if (new Decimal(d.amount_off).decimalPlaces() > digits)
        ctx.addIssue({
          code: 'custom',
          path: ['discount', 'amount_off'],
          message: `has more decimal places than ${d.currency} allows (${digits})`,
        });
    }
  })
  .meta({ id: 'Coupon', description: 'Immutable once created: other terms need a new code.' });
export type Coupon = z.infer<typeof CouponSchema>;

/** A coupon applied to a customer (or one of its subscriptions) that may still discount this invoice. */
export interface CouponToApply {
  applicationId: string;
  coupon: Coupon;
}

/** The lines a discount may apply to: this period's own charges. */
export const discountableLineTypes: readonly string[] = ['base_fee', 'usage', 'minimum_commitment_true_up'];

export interface DiscountableLine {
  type: string;
  meter: string | null;
  amount: string;
}

export interface DiscountLine {
  type: 'discount';
  applicationId: string;
  couponCode: string;
  /** The meter whose usage is discounted; null for the base fee and true-up. */
  meter: string | null;
  description: string;
  exactAmount: string;
  /** Negative, rounded once. */
  amount: string;
}

const bucketName = (meter: string | null) => meter ?? 'base fee and minimum commitment';

/** Whether the coupon discounts a group: a coupon without targets discounts every group. */
const isTarget = (coupon: Coupon, meter: string | null): boolean => {
  if (!coupon.meters && !coupon.base_fee) return true;
  return meter === null ? coupon.base_fee === true : (coupon.meters?.includes(meter) ?? false);
};

/**
 * The discount lines of `coupons`, applied in the order given (the order they were applied to the
 * customer) to the eligible lines. Percentages are rounded once per line; fixed amounts are
 * whole minor units already and fill the eligible charges in line order without rounding.
 */
export function applyDiscounts(input: {
  currency: CurrencyCode;
  rounding: RoundingMode;
  lines: readonly DiscountableLine[];
  coupons: readonly CouponToApply[];
}): DiscountLine[] {
  const { currency, rounding } = input;
  // What is left to discount per meter, in the order the lines come.
  const remaining = new Map<string | null, Decimal>();
  for (const line of input.lines) {
    if (discountableLineTypes.includes(line.type)) remaining.set(line.meter, (remaining.get(line.meter) ?? ZERO).plus(line.amount));
  }
  const discounts: DiscountLine[] = [];
  for (const { applicationId, coupon } of input.coupons) {
    const targets = [...remaining.keys()].filter((meter) => isTarget(coupon, meter));
    const add = (meter: string | null, exact: Decimal, rounded: Decimal, terms: string) => {
      if (rounded.isZero()) return;
      remaining.set(meter, remaining.get(meter)!.minus(rounded));
      discounts.push({
        type: 'discount',
        applicationId,
        couponCode: coupon.code,
        meter,
        description: `Coupon ${coupon.code} (${coupon.name}): ${terms} on ${bucketName(meter)}`,
        exactAmount: formatExact(exact.neg()),
        amount: formatMoney(rounded.neg(), currency),
      });
    };
    const { discount } = coupon;
    if (discount.type === 'percentage') {
      for (const meter of targets) {
        const base = Decimal.max(remaining.get(meter)!, ZERO);
        const exact = base.times(discount.percent_off).div(100);
        // At most 100 % of an amount already in minor units: rounding cannot exceed it.
        add(meter, exact, roundToMinor(exact, currency, rounding), `${discount.percent_off}% of ${formatMoney(base, currency)}`);
      }
    } else if (discount.currency === currency) {
      let left = new Decimal(discount.amount_off);
      for (const meter of targets) {
        const take = Decimal.min(left, Decimal.max(remaining.get(meter)!, ZERO));
        const capped = take.lt(left) ? `, capped at the ${formatMoney(take, currency)} left` : '';
        add(meter, take, take, `${discount.amount_off} ${currency} off${capped}`);
        left = left.minus(take);
      }
    }
  }
  return discounts;
}
