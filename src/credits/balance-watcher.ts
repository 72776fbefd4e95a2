/**
 * Who must hear at once that a customer's credit balance grew: in production the customer's
 * billing workflow, which prices the open period again, so a `credit_only` subscription refused
 * for lack of credit (402) is served again right after a top-up instead of at its next usage
 * report, which a refused customer never sends. Callers invoke it after the grant is committed;
 * implementations must be idempotent.
 */
export interface CreditBalanceWatcher {
  grew(customer: { externalId: string }): Promise<void>;
}
