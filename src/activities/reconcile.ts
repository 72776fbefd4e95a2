import { ApplicationFailure, Context } from '@temporalio/activity';
import { lockInvoice } from '../invoices/store';
import { findDiscrepancies } from '../reconciliations/discrepancies';
import {
  countPending,
  getRun,
  issueCreditNote,
  listFindings,
  openRun,
  pendingMissingPeriods,
  replaceFindings,
  resolveFinding,
  summarize,
  updateRun,
} from '../reconciliations/store';
import { planInEffect } from '../subscriptions/store';
import type { Clock } from '../clock';
import { recordAudit } from '../db/audit';
import type { Pool } from '../db/pool';
import { inTransaction } from '../db/transaction';
import { PricingError } from '../domain/pricing/price-plan';
import { getCustomer } from '../customers/store';
import type { PaymentProvider } from '../provider/payment-provider';
import type { ReconciliationActivities } from '../workflows/reconciliation';
import { workflowActor } from './workflow-actor';

/** Well inside the workflow's heartbeat timeout (2 minutes). */
const HEARTBEAT_MS = 10_000;

export interface ReconcileDeps {
  pool: Pool;
  clock: Clock;
  provider: PaymentProvider;
  /** The invoice path's late-usage lookback: usage it will still adjust is not a discrepancy. */
  lookbackInvoices: number;
  /** The dunning schedule of the invoices reconciliation issues, as the billing workflows have it. */
  dunning: string[];
}

/**
 * The reconciliation workflow's activities. Every one is idempotent: a retried or replayed call
 * converges on the same findings, and a finding gets at most one credit note (unique in the
 * table), so an approval that runs twice corrects once; an invoice it issues is the period's own,
 * under the natural key (customer, period start), so it is issued once whoever gets there first.
 */
export function createReconcileActivities(deps: ReconcileDeps): ReconciliationActivities {
  const reconcilePeriod: ReconciliationActivities['reconcilePeriod'] = async (input) => {
    let customerId: string | null = null;
    if (input.customer !== undefined) {
      const customer = await getCustomer(deps.pool, input.customer);
      if (!customer) throw ApplicationFailure.nonRetryable(`no customer "${input.customer}"`, 'unknown_customer');
      customerId = customer.id;
    }
    const scope = { periodStart: new Date(input.periodStart), periodEnd: new Date(input.periodEnd), customerId };
    // Committed on its own, so the run shows as running while the scope is recomputed.
    const opened = await inTransaction(deps.pool, (client) => openRun(client, input.runId, scope, input.startedBy, deps.clock.now()));
    if (opened.outcome === 'scope_conflict') {
      throw ApplicationFailure.nonRetryable(
        `run ${input.runId} already reconciles [${opened.run.periodStart.toISOString()}, ${opened.run.periodEnd.toISOString()}) of ${opened.run.customer ?? 'all customers'}; start another workflow id for another scope`,
        'run_scope_conflict',
      );
    }

    // Heartbeats on a timer, so a month of invoices in one long query is not taken for a dead worker.
    const context = Context.current();
    const progress = { checked: 0, of: 0 };
    const heartbeats = setInterval(() => context.heartbeat(progress), HEARTBEAT_MS);
    const result = await findDiscrepancies(
      {
        db: deps.pool,
        provider: deps.provider,
        clock: deps.clock,
        lookbackInvoices: deps.lookbackInvoices,
        progress: (checked, of) => Object.assign(progress, { checked, of }),
      },
      { start: scope.periodStart, end: scope.periodEnd, customerId, asOf: new Date(input.asOf) },
    )
      .catch((err: unknown) => {
        // A plan that cannot price usage of its own meters is broken data: retrying cannot help.
        if (err instanceof PricingError) throw ApplicationFailure.nonRetryable(err.message, err.name);
        throw err;
      })
      .finally(() => clearInterval(heartbeats));
    return inTransaction(deps.pool, async (client) => {
      await getRun(client, input.runId, { forUpdate: true });
      const now = deps.clock.now();
      await replaceFindings(client, input.runId, result.found, now);
      const pending = await countPending(client, input.runId);
      const status = pending === 0 ? 'completed' : input.autoApprove ? 'running' : 'awaiting_decision';
      await updateRun(client, input.runId, status, now, result.invoicesChecked);
      return summarize(client, input.runId);
    });
  };

  const applyCorrections: ReconciliationActivities['applyCorrections'] = async ({ runId }) =>
    inTransaction(deps.pool, async (client) => {
      const run = await getRun(client, runId, { forUpdate: true });
      if (!run) throw ApplicationFailure.nonRetryable(`no reconciliation run ${runId}`, 'unknown_run');
      const now = deps.clock.now();
      const actor = workflowActor();
      const pending = await listFindings(client, runId, { pendingForUpdate: true });
      const corrected = new Map<string, string>();
      for (const finding of pending.filter((f) => f.correction !== null)) {
        const { creditNote } = await issueCreditNote(client, finding, now);
        await resolveFinding(client, finding.id, 'corrected', actor, `credit note ${creditNote.id}`, now);
        if (finding.kind === 'amount_mismatch') corrected.set(finding.invoiceId!, creditNote.id);
        await recordAudit(client, {
          actor,
          action: 'reconciliation.corrected',
          subjectType: 'invoice',
          subjectId: finding.invoiceId!,
          details: {
            run_id: runId,
            finding_id: finding.id,
            kind: finding.kind,
            credit_note_id: creditNote.id,
            amount: creditNote.amount,
            currency: creditNote.currency,
          },
          before: { resolution: 'pending', expected: finding.expected, actual: finding.actual },
          after: { resolution: 'corrected', credit_note: { id: creditNote.id, amount: creditNote.amount, currency: creditNote.currency } },
        });
      }
      // A usage difference is billed through its invoice's amount: that credit note settles it too.
      for (const finding of pending.filter((f) => f.kind === 'usage_mismatch' && corrected.has(f.invoiceId!))) {
        const creditNoteId = corrected.get(finding.invoiceId!)!;
        await resolveFinding(client, finding.id, 'corrected', actor, `settled by credit note ${creditNoteId} on the invoice's amount`, now);
        await recordAudit(client, {
          actor,
          action: 'reconciliation.corrected',
          subjectType: 'invoice',
          subjectId: finding.invoiceId!,
          details: { run_id: runId, finding_id: finding.id, kind: finding.kind, credit_note_id: creditNoteId },
          before: { resolution: 'pending', expected: finding.expected, actual: finding.actual },
          after: { resolution: 'corrected' },
        });
      }
      await updateRun(client, runId, 'completed', now);
      return summarize(client, runId);
    });

  const invoicesToIssue: ReconciliationActivities['invoicesToIssue'] = async ({ runId }) => {
    const invoices = [];
    for (const missing of await pendingMissingPeriods(deps.pool, runId)) {
      // Priced as the billing workflow prices a period: on the plan the subscription had when it ended.
      const planCode = await planInEffect(deps.pool, missing.subscriptionId, missing.periodEnd);
      if (!planCode) throw ApplicationFailure.nonRetryable(`subscription ${missing.subscriptionId} does not exist`, 'unknown_subscription');
      invoices.push({
        findingId: missing.findingId,
        period: {
          subscriptionId: missing.subscriptionId,
          customerId: missing.customerId,
          planCode,
          periodStart: missing.periodStart.toISOString(),
          periodEnd: missing.periodEnd.toISOString(),
        },
      });
    }
    return { dunning: deps.dunning, invoices };
  };

  const recordIssuedInvoice: ReconciliationActivities['recordIssuedInvoice'] = async ({ runId, findingId, invoiceId }) =>
    inTransaction(deps.pool, async (client) => {
      if (!(await getRun(client, runId, { forUpdate: true })))
        throw ApplicationFailure.nonRetryable(`no reconciliation run ${runId}`, 'unknown_run');
      const invoice = await lockInvoice(client, invoiceId);
      if (!invoice) throw ApplicationFailure.nonRetryable(`invoice ${invoiceId} does not exist`, 'unknown_invoice');
      // Voided since the finding was made: the period is still not billed, so the finding stays open.
      if (invoice.status === 'void') return;
      const actor = workflowActor();
      if (!(await resolveFinding(client, findingId, 'corrected', actor, `invoice ${invoiceId} issued for the period`, deps.clock.now())))
        return;
      await recordAudit(client, {
        actor,
        action: 'reconciliation.invoice_issued',
        subjectType: 'invoice',
        subjectId: invoiceId,
        details: { run_id: runId, finding_id: findingId, kind: 'missing_invoice' },
        before: { resolution: 'pending', invoice: null },
        after: {
          resolution: 'corrected',
          invoice: { id: invoiceId, status: invoice.status, total: invoice.total, currency: invoice.currency },
        },
      });
    });

  const dismissFindings: ReconciliationActivities['dismissFindings'] = async ({ runId, reason }) =>
    inTransaction(deps.pool, async (client) => {
      const run = await getRun(client, runId, { forUpdate: true });
      if (!run) throw ApplicationFailure.nonRetryable(`no reconciliation run ${runId}`, 'unknown_run');
      const now = deps.clock.now();
      const actor = workflowActor();
      for (const finding of await listFindings(client, runId, { pendingForUpdate: true })) {
        await resolveFinding(client, finding.id, 'dismissed', actor, reason, now);
        await recordAudit(client, {
          actor,
          action: 'reconciliation.dismissed',
          subjectType: finding.invoiceId ? 'invoice' : 'customer',
          subjectId: finding.invoiceId ?? finding.customerId,
          details: { run_id: runId, finding_id: finding.id, kind: finding.kind, reason },
          before: { resolution: 'pending' },
          after: { resolution: 'dismissed' },
        });
      }
      await updateRun(client, runId, 'completed', now);
      return summarize(client, runId);
    });

  const cancelRun: ReconciliationActivities['cancelRun'] = async ({ runId }) =>
    inTransaction(deps.pool, async (client) => {
      const run = await getRun(client, runId, { forUpdate: true });
      if (run && run.status !== 'completed' && run.status !== 'canceled') await updateRun(client, runId, 'canceled', deps.clock.now());
    });

  return { reconcilePeriod, invoicesToIssue, recordIssuedInvoice, applyCorrections, dismissFindings, cancelRun };
}
