import type { CurrencyCode } from './currencies';
import { Decimal, ZERO, formatMoney } from './money';

/*
 * Prepaid credits at invoice finalization: the last step of the invoice pipeline before the amount
 * due. Which grants pay, and how much each, is decided here; the ledger and the invoice line are
 * written by src/credits. Pure and deterministic: the same grants and amount always draw the same way.
 */

export const settlements = ['credit_then_invoice', 'credit_only'] as const;
/**
 * - `credit_then_invoice` (the default): credits pay first, the rest is invoiced and charged.
 * - `credit_only`: the customer runs on credits alone; spend limits stop service when the balance is
 *   spent, so the amount due after credits should be 0. When it is not (usage between the last
 *   limit check and the close, or no limit configured), the remainder is invoiced as overage like
 *   credit_then_invoice and flagged (a `shortfall`) in the audit trail.
 */
export type Settlement = (typeof settlements)[number];
export const DEFAULT_SETTLEMENT: Settlement = 'credit_then_invoice';

/** What an automatic top-up after a drawdown did (src/credits/service.ts), as the invoice collection workflow logs it. */
export type AutoTopUpOutcome =
  | { outcome: 'not_needed'; balance: string }
  | { outcome: 'topped_up'; grantId: string; balance: string }
  | { outcome: 'declined'; grantId: string; declineCode: string | null };

/**
 * Whether a credit_only period's priced usage leaves the automatic top-up due: the credit left
 * (`available` − `spent`) is gone or below the threshold. The billing workflow asks with it, and the
 * credit service decides with it again against the setting as it is when the purchase is made.
 */
export function spendTopUpDue(available: string, spent: string, threshold: string): boolean {
  const left = new Decimal(available).minus(spent);
  return left.lte(0) || left.lt(threshold);
}

/** A grant with credit left, as the allocation sees it. */
export interface GrantAvailable {
  id: string;
  /** Drawn in ascending priority (0 first). */
  priority: number;
  /** null: never expires (drawn after every expiring grant of the same priority). */
  expiresAt: Date | null;
  createdAt: Date;
  /** What the ledger says is left, in the currency's minor unit. */
  remaining: string;
}

export interface Drawdown {
  grantId: string;
  /** Positive: what this grant pays. */
  amount: string;
}

export interface CreditApplication {
  drawdowns: Drawdown[];
  /** Sum of the drawdowns: the credit line shows its negation. */
  applied: string;
  /** What is left to pay after credits. */
  amountDue: string;
  /** With credit_only: what credits did not cover (invoiced as overage and flagged); null when covered or not credit_only. */
  shortfall: string | null;
}

/** The draw order: priority, then earliest expiry (never-expiring last), then oldest, then id so ties are total. */
export function drawOrder(a: GrantAvailable, b: GrantAvailable): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  const expiryA = a.expiresAt?.getTime() ?? Infinity;
  const expiryB = b.expiresAt?.getTime() ?? Infinity;
  if (expiryA !== expiryB) return expiryA < expiryB ? -1 : 1;
  if (a.createdAt.getTime() !== b.createdAt.getTime()) return a.createdAt.getTime() - b.createdAt.getTime();
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Draws `due` (the invoice total before credits, a sum of lines already rounded to the minor unit)
 * from the grants in draw order, each up to what it has left. Nothing is rounded here: grant
 * amounts are whole minor units (refused otherwise at the edge) and so is `due`; formatMoney
 * refuses, rather than hides, an amount that is not.
 */
export function applyCredits(input: {
  currency: CurrencyCode;
  due: string;
  grants: readonly GrantAvailable[];
  settlement: Settlement;
}): CreditApplication {
  const money = (d: Decimal) => formatMoney(d, input.currency);
  let left = new Decimal(input.due);
  const drawdowns: Drawdown[] = [];
  for (const grant of [...input.grants].sort(drawOrder)) {
    if (!left.gt(0)) break;
    const remaining = new Decimal(grant.remaining);
    if (!remaining.gt(0)) continue;
    const amount = Decimal.min(remaining, left);
    drawdowns.push({ grantId: grant.id, amount: money(amount) });
    left = left.minus(amount);
  }
  const applied = drawdowns.reduce((sum, d) => sum.plus(d.amount), ZERO as Decimal);
  const amountDue = new Decimal(input.due).minus(applied);
  return {
    drawdowns,
    applied: money(applied),
    amountDue: money(amountDue),
    shortfall: input.settlement === 'credit_only' && amountDue.gt(0) ? money(amountDue) : null,
  };
}

/** The invoice line's words for what credits paid. */
export const creditLineDescription = (grants: number) => `Prepaid credits applied (${grants} grant${grants === 1 ? '' : 's'})`;

/** Of an invoice's lines, the amount credits paid (the negated sum of its credit lines): reconciliation compares the rest. */
export function creditsOnInvoice(lines: readonly { type: string; amount: string }[]): Decimal {
  return lines.filter((l) => l.type === 'credit').reduce((sum, l) => sum.minus(l.amount), ZERO as Decimal);
}

/** Whether a line is not a credit line: credits pay an invoice, they do not price it, so repricing compares the other lines. */
export const isNotCredit = <L extends { type: string }>(line: L): line is L & { type: Exclude<L['type'], 'credit'> } =>
  line.type !== 'credit';
