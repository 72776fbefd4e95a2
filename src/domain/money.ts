import DecimalJs from 'decimal.js';
import { minorUnits, type CurrencyCode } from './currencies';
import { quote } from './input-checks';

/**
 * Digits accepted on each side of the decimal point in any amount or quantity. With this cap a
 * product of two inputs has at most 40 + 40 digits, so sums of such products stay exact within
 * the precision below: nothing is rounded before `roundToMinor`.
 */
const MAX_DIGITS = 20;

/**
 * The one configured Decimal for money and quantities. Every operation takes its settings from
 * the constructor that made its operand, so all values must come from this clone (via
 * `parseDecimal` or `new Decimal`), never from the bare decimal.js export.
 */
export const Decimal = DecimalJs.clone({
  precision: 100,
  rounding: DecimalJs.ROUND_HALF_UP,
  // Exponent notation would leak into JSON and invoices ("1e-9"); keep plain digits at any scale.
  toExpNeg: -9e15,
  toExpPos: 9e15,
});
export type Decimal = DecimalJs;

export const ZERO = new Decimal(0);

/** Plain decimal notation only: no exponent, no NaN/Infinity, no "1." or ".5", no "+". */
const DECIMAL_PATTERN = new RegExp(`^-?\\d{1,${MAX_DIGITS}}(\\.\\d{1,${MAX_DIGITS}})?$`);
/** The same without a sign: prices, fees and quantities are never negative. */
export const UNSIGNED_DECIMAL_PATTERN = new RegExp(DECIMAL_PATTERN.source.replace('^-?', '^'));

export class InvalidDecimalError extends Error {
  constructor(readonly input: unknown) {
    super(
      `${quote(input)} is not a decimal: expected a string such as "12.50" ` +
        `(at most ${MAX_DIGITS} digits before and after the point, no exponent) or a safe integer`,
    );
    this.name = 'InvalidDecimalError';
  }
}

export function isDecimalString(input: string): boolean {
  return DECIMAL_PATTERN.test(input);
}

/**
 * Parses an amount or quantity. JSON numbers are accepted only as safe integers: a fractional
 * number has already been through binary floating point, so the exact value the sender meant is
 * lost; such values must travel as strings.
 */
export function parseDecimal(input: string | number): Decimal {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input)) throw new InvalidDecimalError(input);
    return new Decimal(input);
  }
  if (!isDecimalString(input)) throw new InvalidDecimalError(input);
  return new Decimal(input);
}

export const roundingModes = ['half_up', 'half_even'] as const;
export type RoundingMode = (typeof roundingModes)[number];

/**
 * The only place an amount is rounded: to the currency's minor unit. `half_up` rounds ties away
 * from zero (commercial rounding, the default); `half_even` is banker's rounding, which plans may
 * choose so that ties do not drift upwards across many lines.
 */
export function roundToMinor(amount: Decimal, currency: CurrencyCode, mode: RoundingMode = 'half_up'): Decimal {
  const rounding = mode === 'half_even' ? Decimal.ROUND_HALF_EVEN : Decimal.ROUND_HALF_UP;
  return amount.toDecimalPlaces(minorUnits(currency), rounding);
}

/**
 * Fixed-point text with exactly the currency's minor digits ("72.00", "1500", "0.125"). Refuses
 * an amount that still has more digits: formatting must never be a second, hidden rounding.
 */
export function formatMoney(amount: Decimal, currency: CurrencyCode): string {
  const digits = minorUnits(currency);
  if (amount.decimalPlaces() > digits) {
    throw new RangeError(`${amount.toFixed()} has more than ${digits} decimal places for ${currency}; round it with roundToMinor first`);
  }
  return amount.toFixed(digits);
}

/** An amount as a count of the currency's minor units ("19.99" USD → "1999"): what payment providers take and report. */
export function toMinorUnits(amount: Decimal | string, currency: CurrencyCode): string {
  return new Decimal(amount).times(new Decimal(10).pow(minorUnits(currency))).toFixed(0);
}

/** The amount a count of the currency's minor units stands for ("1999" USD → 19.99). */
export function fromMinorUnits(minor: string, currency: CurrencyCode): Decimal {
  return new Decimal(minor).div(new Decimal(10).pow(minorUnits(currency)));
}

/** Full-precision text, plain notation, for exact amounts and quantities kept beside rounded ones. */
export function formatExact(amount: Decimal): string {
  return amount.toFixed();
}
