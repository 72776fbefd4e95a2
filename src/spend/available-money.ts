import { Decimal } from '../domain/money';
import type { SpendCap } from '../domain/spend-limit';

/** Whose open period is priced: what a source of available money may look at. */
export interface SpendSubject {
  /** Internal customer id. */
  customerId: string;
  /** The plan's currency, which every amount here is in. */
  currency: string;
  spendCap: SpendCap | null;
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
