import type { Meter } from './meter';

/** Plain decimal notation only: no exponent, NaN, Infinity, hex or thousands separators. */
const DECIMAL = /^(0|[1-9]\d{0,29})(\.\d{1,20})?$/;

export type ValueResult = { ok: true; value: string | null } | { ok: false; reason: string; detail: string };

/**
 * The exact value an event carries for its meter, as a decimal string for a NUMERIC column.
 * JSON numbers are accepted through their shortest exact representation; decimal strings are
 * preferred because a JSON number beyond 15–17 significant digits has already lost precision
 * in any JSON parser.
 */
export function meterValue(meter: Meter, properties: Record<string, unknown>): ValueResult {
  if (meter.aggregation === 'count') return { ok: true, value: null };
  const property = meter.valueProperty!;
  const raw = properties[property];
  if (raw === undefined || raw === null) {
    return { ok: false, reason: 'missing_value', detail: `properties.${property} is required by meter "${meter.code}"` };
  }
  if (meter.aggregation === 'unique_count') {
    if (typeof raw === 'string' ? raw.length > 0 && raw.length <= 256 : typeof raw === 'number' && Number.isFinite(raw)) {
      return { ok: true, value: null };
    }
    return { ok: false, reason: 'invalid_value', detail: `properties.${property} must be a non-empty string (≤ 256) or a finite number` };
  }
  let text: string;
  if (typeof raw === 'number') {
    if (!Number.isFinite(raw)) return { ok: false, reason: 'invalid_value', detail: `properties.${property} must be finite` };
    text = plainNumber(raw);
  } else if (typeof raw === 'string') {
    text = raw;
  } else {
    return { ok: false, reason: 'invalid_value', detail: `properties.${property} must be a decimal string or a number` };
  }
  if (text.startsWith('-')) {
    return { ok: false, reason: 'negative_value', detail: `properties.${property} must not be negative` };
  }
  if (!DECIMAL.test(text)) {
    return {
      ok: false,
      reason: 'invalid_value',
      detail: `properties.${property} must be a plain decimal (at most 30 integer and 20 fractional digits), got ${JSON.stringify(raw).slice(0, 64)}`,
    };
  }
  return { ok: true, value: text };
}

/** A finite JS number in plain notation (1e-7 → "0.0000001"), exactly as JSON delivered it. */
function plainNumber(n: number): string {
  const s = String(n);
  if (!/e/i.test(s)) return s;
  const [mantissa, exp] = s.toLowerCase().split('e') as [string, string];
  const e = Number(exp);
  const negative = mantissa.startsWith('-');
  const digits = mantissa.replace('-', '').replace('.', '');
  const point = mantissa.replace('-', '').indexOf('.');
  const intLen = (point === -1 ? mantissa.replace('-', '').length : point) + e;
  const body =
    intLen <= 0
      ? `0.${'0'.repeat(-intLen)}${digits}`
      : intLen >= digits.length
        ? digits + '0'.repeat(intLen - digits.length)
        : `${digits.slice(0, intLen)}.${digits.slice(intLen)}`;
  return (negative ? '-' : '') + body;
}
