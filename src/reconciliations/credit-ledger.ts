import { grantsOf, ledgerOf, type LedgerEntry } from '../credits/store';
import type { Queryable } from '../db/transaction';
import { compareCreditBalance, compareInvoiceCredits, type CreditDiscrepancy } from '../domain/credit-reconciliation';
import { findingKey } from '../domain/reconciliation';
import type { FoundDiscrepancy } from '../domain/reconciliation';

/*
 * The I/O half of the credit-ledger check (pure half: src/domain/credit-reconciliation.ts). The
 * ledger is not bounded by billing periods, so every run checks the whole ledger of the customers
 * in scope (one customer, or all): each customer and currency's running balances and grants, and
 * every invoice that drew credits or shows a credit line.
 */

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

const seen = (e: LedgerEntry) => ({
  id: e.id,
  grantId: e.grantId,
  kind: e.kind,
  amount: e.amount,
  invoiceId: e.invoiceId,
  balanceAfter: e.balanceAfter,
});

export async function creditLedgerDiscrepancies(db: Queryable, customerId: string | null): Promise<FoundDiscrepancy[]> {
  const [entries, grants] = await Promise.all([ledgerOf(db, customerId), grantsOf(db, customerId)]);
  const { rows: invoices } = await db.query<{ id: string; customer_id: string; status: string; credit_line: string }>(
    `select i.id, i.customer_id, i.status,
            coalesce(-(select sum(l.amount) from invoice_lines l where l.invoice_id = i.id and l.type = 'credit'), 0)::text as credit_line
       from invoices i
      where i.id = any($1) or (($2::uuid is null or i.customer_id = $2)
                               and exists (select 1 from invoice_lines l where l.invoice_id = i.id and l.type = 'credit'))`,
    [[...new Set(entries.flatMap((e) => (e.invoiceId ? [e.invoiceId] : [])))], customerId],
  );
  const found: FoundDiscrepancy[] = [];
  const as = (d: CreditDiscrepancy, customer: string): FoundDiscrepancy => {
    const { ref, ...discrepancy } = d;
    const invoiceId = 'invoiceId' in ref ? ref.invoiceId : null;
    return {
      ...discrepancy,
      key: findingKey(d.kind, invoiceId ?? customer, d.subject),
      customerId: customer,
      invoiceId,
      currency: null,
    };
  };
  const grantsByLedger = groupBy(grants, (g) => `${g.customerId}/${g.currency}`);
  const entriesByLedger = groupBy(entries, (e) => `${e.customerId}/${e.currency}`);
  for (const ledger of new Set([...grantsByLedger.keys(), ...entriesByLedger.keys()])) {
    const [customer, currency] = ledger.split('/') as [string, string];
    const owned = (grantsByLedger.get(ledger) ?? []).map((g) => ({ id: g.id, amount: g.amount, status: g.status }));
    found.push(...compareCreditBalance(currency, (entriesByLedger.get(ledger) ?? []).map(seen), owned).map((d) => as(d, customer)));
  }
  const byInvoice = groupBy(
    entries.filter((e) => e.invoiceId !== null),
    (e) => e.invoiceId!,
  );
  for (const invoice of invoices) {
    const drawn = (byInvoice.get(invoice.id) ?? []).map(seen);
    found.push(
      ...compareInvoiceCredits({ id: invoice.id, status: invoice.status, creditLine: invoice.credit_line }, drawn).map((d) =>
        as(d, invoice.customer_id),
      ),
    );
  }
  return found;
}
