import type { Queryable } from '../db/transaction';

/**
 * The next number of the seller's series for the year of `at` (UTC): PREFIX-YYYY-NNNNNN, gapless.
 * Run inside the finalizing transaction. The upsert increments the series' counter row and holds
 * its row lock (as SELECT … FOR UPDATE would) until that transaction ends, so concurrent
 * finalizations take consecutive numbers one after another, and a transaction that rolls back
 * (a failed or crashed finalize, retried later) gives its number back with everything else. A
 * sequence would not: nextval is never rolled back, which leaves gaps.
 */
export async function nextInvoiceNumber(db: Queryable, prefix: string, at: Date): Promise<string> {
  const series = `${prefix}-${at.getUTCFullYear()}`;
  const { rows } = await db.query<{ last_number: number }>(
    `insert into invoice_number_series as s (series, last_number) values ($1, 1)
     on conflict (series) do update set last_number = s.last_number + 1
     returning s.last_number`,
    [series],
  );
  return `${series}-${String(rows[0]!.last_number).padStart(6, '0')}`;
}
