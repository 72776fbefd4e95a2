/**
 * Exact sum of plain decimal strings (`meterValue`'s output: digits, at most one point, no sign or
 * exponent), rendered as PostgreSQL's `sum(numeric)` renders it: as many fractional digits as the
 * most precise addend, trailing zeros included ("1.50" + "2" = "3.50"); no addends is "0".
 *
 * The ingest writer sums each transaction's values per counter here rather than sending every
 * value to PostgreSQL to parse and aggregate (`npm run bench:ingest:writer`, runs interleaved:
 * PostgreSQL 8.3–10.5 µs per stored event before, 7.2–8.5 after; the writer's process 3.6–4.8 µs
 * before, 3.1–3.6 after, its array of values no longer rendered). The sum is a scaled integer, held
 * in a JS number while it is a safe integer (every operation on it is then exact) and in a bigint
 * from the first addend or partial sum that is not.
 */
export class DecimalSum {
  /** The sum × 10^scale, while a safe integer. */
  private units = 0;
  /** The sum × 10^scale, once beyond the safe integers. */
  private big: bigint | undefined;
  private scale = 0;

  add(plain: string): void {
    const point = plain.indexOf('.');
    const fractionDigits = point === -1 ? 0 : plain.length - point - 1;
    if (fractionDigits > this.scale) {
      this.rescale(fractionDigits);
    }
    const shift = this.scale - fractionDigits;
    if (this.big === undefined && plain.length - (point === -1 ? 0 : 1) + shift <= 15) {
      // At most 15 digits once scaled: exact as a JS number, and so is the sum while it stays safe.
      const scaled = (point === -1 ? Number(plain) : Number(plain.slice(0, point) + plain.slice(point + 1))) * 10 ** shift;
      const units = this.units + scaled;
      if (Number.isSafeInteger(units)) {
        this.units = units;
        return;
      }
    }
    const digits = point === -1 ? plain : plain.slice(0, point) + plain.slice(point + 1);
    this.big = (this.big ?? BigInt(this.units)) + BigInt(digits) * 10n ** BigInt(shift);
  }

  toString(): string {
    const digits = (this.big ?? this.units).toString();
    if (this.scale === 0) return digits;
    const padded = digits.padStart(this.scale + 1, '0');
    return `${padded.slice(0, -this.scale)}.${padded.slice(-this.scale)}`;
  }

  private rescale(scale: number): void {
    const factor = scale - this.scale;
    this.scale = scale;
    if (this.big === undefined) {
      const units = this.units * 10 ** factor;
      if (Number.isSafeInteger(units)) {
        this.units = units;
        return;
      }
      this.big = BigInt(this.units);
    }
    this.big *= 10n ** BigInt(factor);
  }
}
