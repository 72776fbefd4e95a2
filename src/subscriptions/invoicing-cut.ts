import type { Queryable } from '../db/transaction';

/*
 * What a cancellation and the drafting of invoices must agree on: one lock per customer, held
 * by both in their transactions, and the instant the subscription's interim invoices billed up
 * to. Here, below the invoices (which import subscriptions), so both can use it.
 */

/**
 * Serializes the drafting of one customer's invoices until the caller's transaction ends:
 * adjustments read what the customer's other drafts billed.
 */
export async function lockCustomerInvoicing(db: Queryable, customerId: string): Promise<void> {
  await db.query('select pg_advisory_xact_lock(hashtext($1))', [`invoice:${customerId}`]);
}

/** The latest instant an interim invoice of the subscription (not void) was cut at: what its usage was billed up to. */
export async function lastInterimCut(db: Queryable, subscriptionId: string): Promise<Date | null> {
  const { rows } = await db.query<{ cut: Date | null }>(
    `select max(period_end) as cut from invoices where subscription_id = $1 and kind = 'interim' and status <> 'void'`,
    [subscriptionId],
  );
  return rows[0]?.cut ?? null;
}
