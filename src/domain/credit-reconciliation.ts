import { Decimal, ZERO, formatExact } from './money';
import type { Discrepancy } from './reconciliation';

/*
 * Reconciliation of the prepaid-credit ledger (src/credits): pure, like the invoice comparison in
 * ./reconciliation.ts. The ledger must prove itself: each entry's running balance is the sum of
 * the entries before it, no grant has more drawn than it granted, every drawdown sits on a
 * finalized invoice whose credit line says the same amount, and a void invoice keeps no drawdown
 * (its drawdowns are reversed by void entries).
 */

export interface LedgerEntrySeen {
  id: string;
  grantId: string;
  kind: 'grant' | 'drawdown' | 'expiry' | 'void' | 'grant_void';
  amount: string;
  invoiceId: string | null;
  balanceAfter: string;
}

export interface GrantSeen {
  id: string;
  amount: string;
  status: 'pending' | 'active' | 'declined';
}

export interface InvoiceCreditsSeen {
  id: string;
  status: string;
  /** The negated sum of the invoice's credit lines: what the invoice says credits paid. */
  creditLine: string;
}

/** A ledger difference; `ref` names what it concerns (a customer and currency, or an invoice). */
export type CreditDiscrepancy = Discrepancy & { ref: { customer: true; currency: string } | { invoiceId: string } };

const no = { correction: null, settled: false } as const;

/**
 * One customer's ledger in one currency, entries in the order they were written (ascending id),
 * against its grants.
 */
export function compareCreditBalance(
  currency: string,
  entries: readonly LedgerEntrySeen[],
  grants: readonly GrantSeen[],
): CreditDiscrepancy[] {
  const problems: string[] = [];
  let balance = ZERO as Decimal;
  for (const entry of entries) {
    balance = balance.plus(entry.amount);
    if (!balance.eq(entry.balanceAfter))
      problems.push(`entry ${entry.id} records a balance of ${entry.balanceAfter}; the entries up to it sum to ${formatExact(balance)}`);
  }
  if (balance.isNegative()) problems.push(`the entries sum to ${formatExact(balance)}, below zero`);
  // Per grant, in one pass over the entries: what it granted and what is left of it.
  const sums = new Map<string, { granted: Decimal; remaining: Decimal }>();
  for (const e of entries) {
    const sum = sums.get(e.grantId) ?? { granted: ZERO as Decimal, remaining: ZERO as Decimal };
    sums.set(e.grantId, {
      granted: e.kind === 'grant' ? sum.granted.plus(e.amount) : sum.granted,
      remaining: sum.remaining.plus(e.amount),
    });
  }
  for (const grant of grants) {
    const { granted, remaining } = sums.get(grant.id) ?? { granted: ZERO as Decimal, remaining: ZERO as Decimal };
    const expected = grant.status === 'active' ? new Decimal(grant.amount) : ZERO;
    if (!granted.eq(expected))
      problems.push(
        `grant ${grant.id} (${grant.status}) has ${formatExact(granted)} granted in the ledger, expected ${formatExact(expected)}`,
      );
    if (remaining.isNegative()) problems.push(`grant ${grant.id} has more drawn than granted (${formatExact(remaining)} left)`);
  }
  if (problems.length === 0) return [];
  return [
    {
      kind: 'credit_balance_mismatch',
      subject: currency,
      description: `Credit ledger in ${currency}: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? ` (and ${problems.length - 3} more)` : ''}`,
      expected: { balance: formatExact(balance) },
      actual: { problems },
      ...no,
      ref: { customer: true, currency },
    },
  ];
}

/** The drawdowns and reversals of one invoice against its status and credit line. */
export function compareInvoiceCredits(invoice: InvoiceCreditsSeen, entries: readonly LedgerEntrySeen[]): CreditDiscrepancy[] {
  const drawn = entries.filter((e) => e.kind === 'drawdown').reduce((sum, e) => sum.minus(e.amount), ZERO as Decimal);
  const reversed = entries.filter((e) => e.kind === 'void').reduce((sum, e) => sum.plus(e.amount), ZERO as Decimal);
  const net = drawn.minus(reversed);
  const actual = { drawn: formatExact(drawn), reversed: formatExact(reversed), credit_line: invoice.creditLine, status: invoice.status };
  const ref = { invoiceId: invoice.id };
  if (invoice.status === 'void') {
    if (net.isZero()) return [];
    return [
      {
        kind: 'credit_drawdown_on_void_invoice',
        subject: null,
        description: `The invoice is void yet ${formatExact(net)} of credit drawn for it was not given back`,
        expected: { net_drawn: '0' },
        actual,
        ...no,
        ref,
      },
    ];
  }
  if (invoice.status === 'draft' && !drawn.isZero()) {
    return [
      {
        kind: 'credit_drawdown_mismatch',
        subject: null,
        description: `${formatExact(drawn)} of credit was drawn for an invoice that is still a draft`,
        expected: { drawn: '0' },
        actual,
        ...no,
        ref,
      },
    ];
  }
  if (!reversed.isZero() || !drawn.eq(invoice.creditLine)) {
    return [
      {
        kind: 'credit_drawdown_mismatch',
        subject: null,
        description: `The invoice's credit line says ${invoice.creditLine}; the ledger drew ${formatExact(drawn)} and gave back ${formatExact(reversed)} for it`,
        expected: { drawn: invoice.creditLine, reversed: '0' },
        actual,
        ...no,
        ref,
      },
    ];
  }
  return [];
}
