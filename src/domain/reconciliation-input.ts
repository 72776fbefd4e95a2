import { isRepresentableInstant, isStorableText, quote } from './input-checks';

/*
 * What a reconciliation run covers, read from the JSON that starts it (the API's body, or typed by
 * hand in the Temporal UI). Apart from the comparisons (reconciliation.ts) so that the workflow,
 * which parses its own input, does not bundle the pricing and invoice code those import.
 */

export interface ReconciliationInput {
  period_start: string;
  period_end: string;
  customer?: string;
  auto_approve?: boolean;
}

export interface ReconciliationScope {
  /** Invoices whose period starts in [start, end) are reconciled. */
  start: Date;
  end: Date;
  /** External id of the one customer reconciled; all customers when absent. */
  customer: string | null;
  autoApprove: boolean;
}

export class ReconciliationInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReconciliationInputError';
  }
}

/** A date (midnight UTC) or an RFC 3339 instant with its offset: what finance types in a form. */
const INSTANT = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

/** Date.parse rolls 2026-02-30 over into March; a date finance mistyped must be refused instead. */
function isCalendarDate(text: string): boolean {
  const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

function instant(field: string, value: unknown): Date {
  if (typeof value !== 'string' || !INSTANT.test(value) || !isCalendarDate(value) || Number.isNaN(Date.parse(value))) {
    throw new ReconciliationInputError(
      `${field} must be a date such as "2026-11-01" or an instant such as "2026-11-01T00:00:00Z" (got ${quote(value)})`,
    );
  }
  if (!isRepresentableInstant(Date.parse(value))) {
    throw new ReconciliationInputError(`${field} must lie between 1970-01-01 and 9999-12-31 (got ${quote(value)})`);
  }
  return new Date(value);
}

/** Reads the workflow's JSON input (typed by hand in the Temporal UI), refusing anything unclear. */
export function parseReconciliationInput(input: unknown): ReconciliationScope {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ReconciliationInputError(
      'the input must be a JSON object such as {"period_start": "2026-11-01", "period_end": "2026-12-01"}',
    );
  }
  const fields = input as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => !['period_start', 'period_end', 'customer', 'auto_approve'].includes(k));
  if (unknown.length > 0)
    throw new ReconciliationInputError(
      `unknown field(s): ${unknown.join(', ')}; expected period_start, period_end, customer, auto_approve`,
    );
  const start = instant('period_start', fields.period_start);
  const end = instant('period_end', fields.period_end);
  if (end <= start) throw new ReconciliationInputError('period_end must be after period_start');
  const { customer, auto_approve: autoApprove } = fields;
  if (
    customer !== undefined &&
    customer !== null &&
    (typeof customer !== 'string' || customer.length < 1 || customer.length > 128 || !isStorableText(customer))
  ) {
    throw new ReconciliationInputError('customer must be the external id of a customer (1 to 128 characters, no NUL)');
  }
  if (autoApprove !== undefined && typeof autoApprove !== 'boolean')
    throw new ReconciliationInputError('auto_approve must be true or false');
  return { start, end, customer: typeof customer === 'string' ? customer : null, autoApprove: autoApprove ?? false };
}
