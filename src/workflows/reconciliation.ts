import {
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  defineSignal,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import type { ReconciliationSummary } from '../domain/reconciliation';
import {
  ReconciliationInputError,
  parseReconciliationInput,
  type ReconciliationInput,
  type ReconciliationScope,
} from '../domain/reconciliation-input';
import type { BillingPeriodActivities } from './billing-period';
import { ACTIVITY_START_TO_CLOSE_MS, RECONCILE_HEARTBEAT_MS, RECONCILE_START_TO_CLOSE_MS } from './activity-timeouts';
import { startInvoiceCollection } from './invoice-collection';

/*
 * Reconciliation of one scope (a period, one customer or all), started by finance from the
 * Temporal UI with a JSON input, or through the API. It recomputes, reports, and waits for a
 * person: `approve` issues the credit notes and the missing invoices, `retry` recomputes (after a fix), `dismiss` closes
 * the pending findings without a correction. With auto_approve it corrects without waiting.
 * The workflow id names the run: its report in Postgres is keyed by it.
 * Deterministic: no I/O and no Node APIs here; time is the workflow's own clock.
 */

/** What the workflow needs from the outside world; implemented in src/activities/reconcile.ts. */
export interface ReconciliationActivities {
  /** Recomputes the scope and replaces the run's undecided findings; `asOf`: periods ended by then must be invoiced. */
  reconcilePeriod(input: {
    runId: string;
    periodStart: string;
    periodEnd: string;
    /** External id of the one customer to reconcile. */
    customer?: string;
    asOf: string;
    startedBy: string;
    /** Corrections follow at once: the run does not wait for a decision. */
    autoApprove: boolean;
  }): Promise<ReconciliationSummary>;
  /**
   * What the run's pending `missing_invoice` findings need issued: each period as the billing
   * workflow would have drafted it, and the dunning schedule its collection follows.
   */
  invoicesToIssue(input: { runId: string }): Promise<{
    dunning: string[];
    invoices: Array<{ findingId: number; period: Parameters<BillingPeriodActivities['draftInvoice']>[0] }>;
  }>;
  /** The finding's invoice is issued: the finding is corrected, audited once. */
  recordIssuedInvoice(input: { runId: string; findingId: number; invoiceId: string }): Promise<void>;
  /** One credit note per pending finding with a correction; completes the run. */
  applyCorrections(input: { runId: string }): Promise<ReconciliationSummary>;
  /** Closes every pending finding without a correction; completes the run. */
  dismissFindings(input: { runId: string; reason: string }): Promise<ReconciliationSummary>;
  cancelRun(input: { runId: string }): Promise<void>;
}

const { reconcilePeriod, invoicesToIssue, recordIssuedInvoice, applyCorrections, dismissFindings, cancelRun } =
  proxyActivities<ReconciliationActivities>({
    // Reading the provider for every invoice of a month takes a while; the activity heartbeats as it goes.
    startToCloseTimeout: RECONCILE_START_TO_CLOSE_MS,
    heartbeatTimeout: RECONCILE_HEARTBEAT_MS,
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes' },
  });
/** The billing workflow's own invoice activities, with its profile: a missing invoice is issued as any other. */
const { draftInvoice, finalizeInvoice } = proxyActivities<Pick<BillingPeriodActivities, 'draftInvoice' | 'finalizeInvoice'>>({
  startToCloseTimeout: ACTIVITY_START_TO_CLOSE_MS,
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes' },
});

/** Histories recorded before this patch approved without issuing missing invoices; they replay as they ran. */
const ISSUE_MISSING_INVOICES = 'issue-missing-invoices';

export const approveSignal = defineSignal('approve');
export const retrySignal = defineSignal('retry');
export const dismissSignal = defineSignal<[{ reason?: string }?]>('dismiss');
export const reportQuery = defineQuery<ReconciliationSummary>('report');

/** The id the API starts a scope's run under: a retried request finds the same run. */
export const reconciliationWorkflowIdFor = (scope: Pick<ReconciliationScope, 'start' | 'customer'>) =>
  `reconcile/${scope.start.toISOString()}/${scope.customer ?? 'all'}`;

type Decision = { kind: 'approve' } | { kind: 'retry' } | { kind: 'dismiss'; reason: string };

export async function reconciliationWorkflow(input: ReconciliationInput): Promise<ReconciliationSummary> {
  const run = new ReconciliationRun(parseScope(input));
  run.listen();
  try {
    return await run.untilDecided();
  } catch (err) {
    if (isCancellation(err)) await CancellationScope.nonCancellable(() => cancelRun({ runId: run.runId }));
    throw err;
  }
}

function parseScope(input: ReconciliationInput): ReconciliationScope {
  try {
    return parseReconciliationInput(input);
  } catch (err) {
    if (err instanceof ReconciliationInputError) throw ApplicationFailure.nonRetryable(`invalid input: ${err.message}`, 'invalid_input');
    throw err;
  }
}

/** One run's report and the decisions signalled to it, not yet applied. */
class ReconciliationRun {
  readonly runId = workflowInfo().workflowId;
  private readonly startedBy = workflowInfo().memo?.started_by;
  private summary: ReconciliationSummary;
  private readonly decisions: Decision[] = [];

  constructor(private readonly scope: ReconciliationScope) {
    this.summary = {
      runId: this.runId,
      status: 'running',
      period: { start: scope.start.toISOString(), end: scope.end.toISOString() },
      customer: scope.customer,
      invoicesChecked: 0,
      findings: { total: 0, pending: 0, corrected: 0, dismissed: 0 },
      pendingByKind: {},
      corrections: { count: 0, totals: {} },
      pending: [],
    };
  }

  listen(): void {
    setHandler(reportQuery, () => this.summary);
    setHandler(approveSignal, () => void this.decisions.push({ kind: 'approve' }));
    setHandler(retrySignal, () => void this.decisions.push({ kind: 'retry' }));
    setHandler(
      dismissSignal,
      (input) => void this.decisions.push({ kind: 'dismiss', reason: input?.reason?.trim() || 'dismissed from the Temporal UI' }),
    );
  }

  /** Computes the report, then applies decisions (or auto-approves) until the run is complete. */
  async untilDecided(): Promise<ReconciliationSummary> {
    show(this.summary);
    await this.recompute();
    if (this.scope.autoApprove && this.summary.status === 'running') await this.approve();
    while (this.summary.status === 'awaiting_decision') {
      await condition(() => this.decisions.length > 0);
      const decision = this.decisions.shift()!;
      if (decision.kind === 'retry') await this.recompute();
      else if (decision.kind === 'approve') await this.approve();
      else this.update(await dismissFindings({ runId: this.runId, reason: decision.reason }));
    }
    return this.summary;
  }

  private async recompute(): Promise<void> {
    this.update(
      await reconcilePeriod({
        runId: this.runId,
        periodStart: this.scope.start.toISOString(),
        periodEnd: this.scope.end.toISOString(),
        ...(this.scope.customer === null ? {} : { customer: this.scope.customer }),
        asOf: new Date().toISOString(),
        // Set as memo by the API (the key that asked); a start from the UI or CLI has none.
        startedBy: typeof this.startedBy === 'string' ? this.startedBy : 'temporal',
        autoApprove: this.scope.autoApprove,
      }),
    );
  }

  /**
   * Issues each missing invoice under its natural key (customer, period start), so it can never
   * duplicate the billing workflow's: drafted, finalized and collected (`collect/<invoice id>`)
   * like any other; then the credit notes, which complete the run.
   */
  private async approve(): Promise<void> {
    if ((this.summary.pendingByKind.missing_invoice ?? 0) > 0 && patched(ISSUE_MISSING_INVOICES)) {
      const { dunning, invoices } = await invoicesToIssue({ runId: this.runId });
      for (const { findingId, period } of invoices) {
        const { invoiceId } = await draftInvoice(period);
        await finalizeInvoice({ invoiceId });
        await startInvoiceCollection(invoiceId, dunning);
        await recordIssuedInvoice({ runId: this.runId, findingId, invoiceId });
      }
    }
    this.update(await applyCorrections({ runId: this.runId }));
  }

  private update(next: ReconciliationSummary): void {
    this.summary = next;
    show(this.summary);
  }
}

/** What the Temporal UI shows for the run at a glance (memo and current details). */
function show(s: ReconciliationSummary): void {
  upsertMemo({ status: s.status, findings: s.findings, pending_by_kind: s.pendingByKind, corrections: s.corrections });
  const scope = `${s.period.start} → ${s.period.end}, ${s.customer === null ? 'all customers' : `customer **${s.customer}**`}`;
  const totals = Object.entries(s.corrections.totals)
    .map(([currency, amount]) => `${amount} ${currency}`)
    .join(', ');
  const missing = s.pendingByKind.missing_invoice ?? 0;
  setCurrentDetails(
    [
      `**Reconciliation** ${scope}`,
      `Status: **${s.status}**; ${s.invoicesChecked} invoice(s) checked; findings: ${s.findings.pending} pending, ${s.findings.corrected} corrected, ${s.findings.dismissed} dismissed`,
      ...s.pending.map(
        (f) =>
          `- \`${f.kind}\` ${f.customer}${f.invoiceId ? ` invoice ${f.invoiceId}` : ''}: ${f.description}${f.correction ? ` (credit note ${f.correction} ${f.currency})` : ''}`,
      ),
      ...(s.findings.pending > s.pending.length
        ? [`- … and ${s.findings.pending - s.pending.length} more (GET /v1/reconciliations/{id})`]
        : []),
      ...(s.status === 'awaiting_decision'
        ? [
            `Signal **approve** to issue ${s.corrections.count} credit note(s)${totals ? ` (${totals}; positive = owed back to the customer)` : ''}` +
              `${missing ? ` and ${missing} missing invoice(s)` : ''}, ` +
              '**retry** to recompute after a fix, or **dismiss** to close the pending findings without a correction.',
          ]
        : []),
    ].join('\n'),
  );
}
