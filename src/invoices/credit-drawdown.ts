import { recordAudit, type AuditActor } from '../db/audit';
import type { Queryable } from '../db/transaction';
import { applyCredits, creditLineDescription, DEFAULT_SETTLEMENT } from '../domain/credit-drawdown';
import { Decimal, formatMoney } from '../domain/money';
import { appendLedgerEntry, entriesForInvoice, getGrant, grantsAvailable, lockCreditLedger } from '../credits/store';
import { getPlan } from '../plans/store';
import { appendLineAtFinalization, type LockedInvoice } from './store';

/*
 * The ledger side of an invoice's lifecycle, run inside the invoice's own transactions
 * (./service.ts): credits drawn when it is finalized, given back when it is voided. The invoice
 * side of the pipeline's prepaid-credits step (src/domain/invoice-pipeline.ts), as ./after-pricing.ts
 * is of discounts and taxes; the ledger itself is src/credits/store.ts.
 */

export interface CreditsApplied {
  /** The invoice total after credits: the amount due. */
  total: string;
  /** What credits paid ("0.00" when nothing). */
  applied: string;
  /** credit_only plans: what credits did not cover, invoiced as overage and flagged; null otherwise. */
  shortfall: string | null;
}

/**
 * Draws the customer's credits for a draft invoice being finalized, in the domain's draw order
 * (src/domain/credit-drawdown.ts): one drawdown entry per grant used (keyed by invoice and grant),
 * and one negative 'credit' line with the new total, before the caller moves the status (lines
 * freeze after). The caller holds the invoice's row lock, so a second finalization never gets here.
 */
export async function drawCreditsAtFinalization(
  client: Queryable,
  invoice: LockedInvoice,
  actor: AuditActor,
  now: Date,
): Promise<CreditsApplied> {
  const plan = await getPlan(client, invoice.planCode);
  await lockCreditLedger(client, invoice.customerId, invoice.currency);
  const application = applyCredits({
    currency: invoice.currency,
    due: invoice.total,
    grants: await grantsAvailable(client, invoice.customerId, invoice.currency, now),
    settlement: plan?.settlement ?? DEFAULT_SETTLEMENT,
  });
  for (const drawdown of application.drawdowns) {
    const entry = await appendLedgerEntry(
      client,
      {
        grantId: drawdown.grantId,
        customerId: invoice.customerId,
        currency: invoice.currency,
        kind: 'drawdown',
        amount: formatMoney(new Decimal(drawdown.amount).neg(), invoice.currency),
        invoiceId: invoice.id,
        actor,
      },
      now,
    );
    if (entry) {
      await recordAudit(client, {
        actor,
        action: 'credit.drawn_down',
        subjectType: 'credit_grant',
        subjectId: drawdown.grantId,
        details: { invoice_id: invoice.id, ledger_entry_id: entry.id, amount: entry.amount, currency: invoice.currency },
        after: { balance: entry.balanceAfter },
      });
    }
  }
  if (application.drawdowns.length > 0) {
    const credit = formatMoney(new Decimal(application.applied).neg(), invoice.currency);
    await appendLineAtFinalization(
      client,
      invoice.id,
      {
        type: 'credit',
        meter: null,
        model: null,
        quantity: null,
        description: creditLineDescription(application.drawdowns.length),
        exactAmount: credit,
        amount: credit,
        segment: null,
        breakdown: [],
        adjusts: null,
      },
      application.amountDue,
    );
  }
  if (application.shortfall !== null) {
    await recordAudit(client, {
      actor,
      action: 'invoice.credit_shortfall',
      subjectType: 'invoice',
      subjectId: invoice.id,
      details: {
        settlement: 'credit_only',
        shortfall: application.shortfall,
        currency: invoice.currency,
        note: 'credits did not cover the invoice: the remainder is invoiced as overage',
      },
    });
  }
  return {
    total: application.drawdowns.length > 0 ? application.amountDue : invoice.total,
    applied: application.applied,
    shortfall: application.shortfall,
  };
}

/**
 * Gives back what a voided invoice drew: one void entry per drawdown (keyed by invoice and grant,
 * so voiding twice reverses once). Credit given back to a grant that has expired meanwhile
 * expires again at once (an expiry entry keyed by the grant and this invoice).
 */
export async function reverseCreditDrawdowns(client: Queryable, invoice: LockedInvoice, actor: AuditActor, now: Date): Promise<void> {
  const drawdowns = (await entriesForInvoice(client, invoice.id)).filter((e) => e.kind === 'drawdown');
  if (drawdowns.length === 0) return;
  await lockCreditLedger(client, invoice.customerId, invoice.currency);
  for (const drawdown of drawdowns) {
    const given = formatMoney(new Decimal(drawdown.amount).neg(), invoice.currency);
    const entry = await appendLedgerEntry(client, { ...drawdown, kind: 'void', amount: given, invoiceId: invoice.id, actor }, now);
    if (!entry) continue;
    await recordAudit(client, {
      actor,
      action: 'credit.drawdown_reversed',
      subjectType: 'credit_grant',
      subjectId: drawdown.grantId,
      details: { invoice_id: invoice.id, ledger_entry_id: entry.id, amount: entry.amount, currency: entry.currency },
      after: { balance: entry.balanceAfter },
    });
    const grant = await getGrant(client, drawdown.grantId);
    if (grant?.expiresAt && grant.expiresAt <= now) {
      const expiry = await appendLedgerEntry(
        client,
        { ...drawdown, kind: 'expiry', amount: drawdown.amount, invoiceId: invoice.id, actor },
        now,
      );
      if (expiry) {
        await recordAudit(client, {
          actor,
          action: 'credit.expired',
          subjectType: 'credit_grant',
          subjectId: drawdown.grantId,
          details: {
            invoice_id: invoice.id,
            ledger_entry_id: expiry.id,
            amount: expiry.amount,
            currency: expiry.currency,
            expired_at: grant.expiresAt.toISOString(),
          },
          after: { balance: expiry.balanceAfter },
        });
      }
    }
  }
}
