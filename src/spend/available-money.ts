import { Decimal } from '../domain/money';
import type { Plan } from '../domain/plan';
import type { SpendCap } from '../domain/spend-limit-schema';
import { creditForPeriod } from '../credits/store';
import type { Queryable } from '../db/transaction';

/** Whose open period is priced: what a source of available money may look at. */
export interface SpendSubject {
  /** Internal customer id. */
  customerId: string;
  /** The plan's currency, which every amount here is in. */
  currency: string;
  /** Start of the open period. */
  periodStart: Date;
  spendCap: SpendCap | null;
  /** How the plan settles: with `credit_only`, the credit balance is what usage may reach. */
  settlement: NonNullable<Plan['settlement']>;
}

/**
 * One source of "money the open period's usage may reach". The spend cap is the first; prepaid
 * credits with `credit_only` settlement are the second (the balance from the credits ledger).
 * Null: this source does not limit the subscription.
 */
export interface AvailableMoney {
  readonly source: string;
  available(subject: SpendSubject): Promise<Decimal | null>;
}

/** The subscription's spend cap, as it is: no reads. */
export const spendCapMoney: AvailableMoney = {
  source: 'spend_cap',
  available: (subject) => Promise.resolve(subject.spendCap ? new Decimal(subject.spendCap.amount) : null),
};

/**
 * The customer's prepaid credit in the plan's currency, for plans settling `credit_only`: the
 * balance, plus what this period's interim invoices drew (their usage is in the period's spend).
 * The open period's usage is compared with it before the period's invoice draws it down; the
 * base fee and taxes are drawn at finalization too, so usage stops a little late rather than
 * early (what credits do not cover is invoiced and flagged).
 */
export const creditOnlyMoney = (db: Queryable): AvailableMoney => ({
  source: 'credits',
  available: async (subject) =>
    subject.settlement === 'credit_only'
      ? new Decimal(await creditForPeriod(db, subject.customerId, subject.currency, subject.periodStart))
      : null,
});

/** The least of what the sources allow, and which source it is; null when none limits the subscription. */
export async function leastAvailable(
  sources: readonly AvailableMoney[],
  subject: SpendSubject,
): Promise<{ amount: Decimal; source: string } | null> {
  let least: { amount: Decimal; source: string } | null = null;
  for (const s of sources) {
    const amount = await s.available(subject);
    if (amount !== null && (least === null || amount.lt(least.amount))) least = { amount, source: s.source };
  }
  return least;
}
