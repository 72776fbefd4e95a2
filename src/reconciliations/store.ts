import type { Queryable } from '../db/transaction';
import { Decimal } from '../domain/money';
import type { FindingBrief, FindingKind, ReconciliationSummary, RunStatus } from '../domain/reconciliation';
import type { FoundDiscrepancy } from '../domain/reconciliation';

/*
 * Reconciliation runs, their findings and the credit notes that correct them
 * (migrations/0010_reconciliation.sql). Writers take the client of the caller's transaction.
 */

export interface ReconciliationRun {
  id: string;
  periodStart: Date;
  periodEnd: Date;
  customerId: string | null;
  /** External id of the customer reconciled, or null for all. */
  customer: string | null;
  status: RunStatus;
  startedBy: string;
  invoicesChecked: number;
  counts: { findings: number; pending: number; corrected: number; dismissed: number };
  createdAt: Date;
  updatedAt: Date;
  completedAt: Date | null;
}

export type Resolution = 'pending' | 'corrected' | 'dismissed';

export interface Finding {
  id: number;
  runId: string;
  key: string;
  kind: FindingKind;
  customerId: string;
  customer: string;
  invoiceId: string | null;
  subject: string | null;
  description: string;
  expected: Record<string, unknown>;
  actual: Record<string, unknown>;
  correction: string | null;
  currency: string | null;
  resolution: Resolution;
  resolvedAt: Date | null;
  resolvedBy: string | null;
  resolutionNote: string | null;
  carriedFrom: number | null;
  createdAt: Date;
}

export interface CreditNote {
  id: string;
  invoiceId: string;
  findingId: number;
  amount: string;
  currency: string;
  reason: string;
  createdAt: Date;
}

interface RunRow {
  id: string;
  period_start: Date;
  period_end: Date;
  customer_id: string | null;
  external_id: string | null;
  status: RunStatus;
  started_by: string;
  invoices_checked: number;
  findings: number;
  pending: number;
  corrected: number;
  dismissed: number;
  created_at: Date;
  updated_at: Date;
  completed_at: Date | null;
}

const toRun = (r: RunRow): ReconciliationRun => ({
  id: r.id,
  periodStart: r.period_start,
  periodEnd: r.period_end,
  customerId: r.customer_id,
  customer: r.external_id,
  status: r.status,
  startedBy: r.started_by,
  invoicesChecked: r.invoices_checked,
  counts: { findings: r.findings, pending: r.pending, corrected: r.corrected, dismissed: r.dismissed },
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  completedAt: r.completed_at,
});

/** The run, locked for the caller's transaction when `forUpdate`. */
export async function getRun(db: Queryable, id: string, opts: { forUpdate?: boolean } = {}): Promise<ReconciliationRun | undefined> {
  const { rows } = await db.query<RunRow>(
    `select r.*, c.external_id from reconciliation_runs r left join customers c on c.id = r.customer_id where r.id = $1
     ${opts.forUpdate ? 'for update of r' : ''}`,
    [id],
  );
  return rows[0] && toRun(rows[0]);
}

export interface RunScope {
  periodStart: Date;
  periodEnd: Date;
  customerId: string | null;
}

/** Records a run that is starting, unless its id is already there; true when it was created. */
export async function createRun(db: Queryable, id: string, scope: RunScope, startedBy: string, now: Date): Promise<boolean> {
  const { rowCount } = await db.query(
    `insert into reconciliation_runs (id, period_start, period_end, customer_id, status, started_by, created_at, updated_at)
     values ($1, $2, $3, $4, 'running', $5, $6, $6) on conflict (id) do nothing`,
    [id, scope.periodStart, scope.periodEnd, scope.customerId, startedBy, now],
  );
  return rowCount === 1;
}

/**
 * What the API records once it has started (or found) the run's workflow: the run, created if
 * absent, and re-opened if it still shows an earlier execution's end, so a report read right
 * after the answer never shows that end as this execution's. A run updated since `requestedAt`
 * was already taken over by the new execution and is left alone.
 */
export async function recordStart(
  db: Queryable,
  id: string,
  scope: RunScope,
  startedBy: string,
  requestedAt: Date,
  now: Date,
): Promise<void> {
  await db.query(
    `insert into reconciliation_runs as r (id, period_start, period_end, customer_id, status, started_by, created_at, updated_at)
     values ($1, $2, $3, $4, 'running', $5, $6, $6)
     on conflict (id) do update set status = 'running', completed_at = null, updated_at = $6
       where r.status in ('completed', 'canceled') and r.updated_at < $7`,
    [id, scope.periodStart, scope.periodEnd, scope.customerId, startedBy, now, requestedAt],
  );
}

/** Whether the run covers exactly this scope. */
export const coversScope = (run: ReconciliationRun, scope: RunScope) =>
  run.periodStart.getTime() === scope.periodStart.getTime() &&
  run.periodEnd.getTime() === scope.periodEnd.getTime() &&
  run.customerId === scope.customerId;

export type OpenRunResult =
  { outcome: 'opened' | 'reopened'; run: ReconciliationRun } | { outcome: 'scope_conflict'; run: ReconciliationRun };

/**
 * Creates the run, or re-opens it when its workflow id is started again for the same scope. A
 * workflow id already used for another scope is refused: one id, one scope, or reports would mix.
 */
export async function openRun(db: Queryable, id: string, scope: RunScope, startedBy: string, now: Date): Promise<OpenRunResult> {
  const created = await createRun(db, id, scope, startedBy, now);
  const run = (await getRun(db, id, { forUpdate: true }))!;
  if (created) return { outcome: 'opened', run };
  if (!coversScope(run, scope)) return { outcome: 'scope_conflict', run };
  await db.query(`update reconciliation_runs set status = 'running', completed_at = null, updated_at = $2 where id = $1`, [id, now]);
  return { outcome: 'reopened', run: (await getRun(db, id))! };
}

/** Recounts the run's findings and moves it to `status` (completed and canceled are stamped). */
export async function updateRun(db: Queryable, id: string, status: RunStatus, now: Date, invoicesChecked?: number): Promise<void> {
  await db.query(
    `update reconciliation_runs r set status = $2::text, updated_at = $3::timestamptz,
            completed_at = case when $2::text in ('completed', 'canceled') then $3::timestamptz end,
            invoices_checked = coalesce($4::integer, r.invoices_checked),
            findings = f.total, pending = f.pending, corrected = f.corrected, dismissed = f.dismissed
       from (select count(*) as total,
                    count(*) filter (where resolution = 'pending') as pending,
                    count(*) filter (where resolution = 'corrected') as corrected,
                    count(*) filter (where resolution = 'dismissed') as dismissed
               from reconciliation_findings where run_id = $1) f
      where r.id = $1`,
    [id, status, now, invoicesChecked ?? null],
  );
}

/**
 * Replaces what the run found: its pending and carried findings go, the new ones come, and the
 * findings someone decided on stay. A difference that an earlier decision already covers is
 * stored resolved, carried from that decision: settled by credit notes issued before, or the
 * very same difference (same expected and actual) corrected or dismissed before. When the
 * earlier decision is this run's own, it is not repeated.
 */
export async function replaceFindings(db: Queryable, runId: string, found: FoundDiscrepancy[], now: Date): Promise<void> {
  await db.query(`delete from reconciliation_findings where run_id = $1 and (resolution = 'pending' or carried_from is not null)`, [runId]);
  for (const d of found) {
    const expected = JSON.stringify(d.expected);
    const actual = JSON.stringify(d.actual);
    const { rows } = d.settled
      ? await db.query<{ id: string; run_id: string; resolution: Resolution; resolved_at: Date; resolved_by: string }>(
          `select f.id, f.run_id, f.resolution, f.resolved_at, f.resolved_by
             from reconciliation_findings f join credit_notes c on c.finding_id = f.id
            where f.invoice_id = $2 order by (f.key = $1) desc, f.id desc limit 1`,
          [d.key, d.invoiceId],
        )
      : await db.query<{ id: string; run_id: string; resolution: Resolution; resolved_at: Date; resolved_by: string }>(
          `select id, run_id, resolution, resolved_at, resolved_by from reconciliation_findings
            where key = $1 and resolution <> 'pending' and carried_from is null and expected = $2::jsonb and actual = $3::jsonb
            order by id desc limit 1`,
          [d.key, expected, actual],
        );
    const earlier = rows[0];
    if (earlier?.run_id === runId) continue;
    await db.query(
      `insert into reconciliation_findings (run_id, key, kind, customer_id, invoice_id, subject, description, expected, actual, correction, currency,
                                            resolution, resolved_at, resolved_by, resolution_note, carried_from, created_at)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
      [
        runId,
        d.key,
        d.kind,
        d.customerId,
        d.invoiceId,
        d.subject,
        d.description,
        expected,
        actual,
        earlier ? null : d.correction,
        earlier ? null : d.currency,
        earlier?.resolution ?? 'pending',
        earlier?.resolved_at ?? null,
        earlier?.resolved_by ?? null,
        earlier ? `${earlier.resolution} earlier, in run ${earlier.run_id} (finding ${earlier.id})` : null,
        earlier?.id ?? null,
        now,
      ],
    );
  }
}

interface FindingRow {
  id: string;
  run_id: string;
  key: string;
  kind: FindingKind;
  customer_id: string;
  external_id: string;
  invoice_id: string | null;
  subject: string | null;
  description: string;
  expected: Record<string, unknown>;
  actual: Record<string, unknown>;
  correction: string | null;
  currency: string | null;
  resolution: Resolution;
  resolved_at: Date | null;
  resolved_by: string | null;
  resolution_note: string | null;
  carried_from: string | null;
  created_at: Date;
}

const toFinding = (r: FindingRow): Finding => ({
  id: Number(r.id),
  runId: r.run_id,
  key: r.key,
  kind: r.kind,
  customerId: r.customer_id,
  customer: r.external_id,
  invoiceId: r.invoice_id,
  subject: r.subject,
  description: r.description,
  expected: r.expected,
  actual: r.actual,
  correction: r.correction,
  currency: r.currency,
  resolution: r.resolution,
  resolvedAt: r.resolved_at,
  resolvedBy: r.resolved_by,
  resolutionNote: r.resolution_note,
  carriedFrom: r.carried_from === null ? null : Number(r.carried_from),
  createdAt: r.created_at,
});

/** The run's findings in the order they were found; `pending` only the undecided ones, locked for the caller's transaction. */
export async function listFindings(db: Queryable, runId: string, opts: { pendingForUpdate?: boolean } = {}): Promise<Finding[]> {
  const { rows } = await db.query<FindingRow>(
    `select f.id, f.run_id, f.key, f.kind, f.customer_id, c.external_id, f.invoice_id, f.subject, f.description, f.expected, f.actual,
            f.correction::text, f.currency, f.resolution, f.resolved_at, f.resolved_by, f.resolution_note, f.carried_from, f.created_at
       from reconciliation_findings f join customers c on c.id = f.customer_id
      where f.run_id = $1 ${opts.pendingForUpdate ? `and f.resolution = 'pending'` : ''}
      order by f.id ${opts.pendingForUpdate ? 'for update of f' : ''}`,
    [runId],
  );
  return rows.map(toFinding);
}

/** How many of the run's findings await a decision. */
export async function countPending(db: Queryable, runId: string): Promise<number> {
  const { rows } = await db.query<{ pending: string }>(
    `select count(*) as pending from reconciliation_findings where run_id = $1 and resolution = 'pending'`,
    [runId],
  );
  return Number(rows[0]!.pending);
}

/** Settles a pending finding (true) or leaves a decided one as it is (false); the table's trigger refuses to change a decided one. */
export async function resolveFinding(
  db: Queryable,
  id: number,
  resolution: Exclude<Resolution, 'pending'>,
  by: string,
  note: string,
  now: Date,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `update reconciliation_findings set resolution = $2, resolved_at = $3, resolved_by = $4, resolution_note = $5 where id = $1 and resolution = 'pending'`,
    [id, resolution, now, by, note],
  );
  return rowCount === 1;
}

/** A subscription period without an invoice, as a pending `missing_invoice` finding of the run names it. */
export interface MissingPeriod {
  findingId: number;
  customerId: string;
  subscriptionId: string;
  periodStart: Date;
  periodEnd: Date;
}

/** The run's pending `missing_invoice` findings, in the order they were found. */
export async function pendingMissingPeriods(db: Queryable, runId: string): Promise<MissingPeriod[]> {
  const { rows } = await db.query<{ id: string; customer_id: string; subscription_id: string; period_start: Date; period_end: Date }>(
    `select id, customer_id, expected ->> 'subscription_id' as subscription_id,
            (expected -> 'period' ->> 'start')::timestamptz as period_start, (expected -> 'period' ->> 'end')::timestamptz as period_end
       from reconciliation_findings where run_id = $1 and kind = 'missing_invoice' and resolution = 'pending' order by id`,
    [runId],
  );
  return rows.map((r) => ({
    findingId: Number(r.id),
    customerId: r.customer_id,
    subscriptionId: r.subscription_id,
    periodStart: r.period_start,
    periodEnd: r.period_end,
  }));
}

/** The finding's credit note: created once (unique on the finding), or the one already there. */
export async function issueCreditNote(db: Queryable, finding: Finding, now: Date): Promise<{ creditNote: CreditNote; created: boolean }> {
  const { rows } = await db.query<{ id: string }>(
    `insert into credit_notes (invoice_id, finding_id, amount, currency, reason, created_at) values ($1, $2, $3, $4, $5, $6)
     on conflict (finding_id) do nothing returning id`,
    [
      finding.invoiceId,
      finding.id,
      finding.correction,
      finding.currency,
      `Reconciliation ${finding.runId}, ${finding.kind}: ${finding.description}`.slice(0, 1000),
      now,
    ],
  );
  const creditNote = (await creditNotesWhere(db, 'c.finding_id = $1', [finding.id]))[0]!;
  return { creditNote, created: rows.length > 0 };
}

async function creditNotesWhere(db: Queryable, where: string, params: unknown[]): Promise<CreditNote[]> {
  const { rows } = await db.query<{
    id: string;
    invoice_id: string;
    finding_id: string;
    amount: string;
    currency: string;
    reason: string;
    created_at: Date;
  }>(
    `select c.id, c.invoice_id, c.finding_id, c.amount::text, c.currency, c.reason, c.created_at from credit_notes c where ${where} order by c.created_at, c.id`,
    params,
  );
  return rows.map((r) => ({
    id: r.id,
    invoiceId: r.invoice_id,
    findingId: Number(r.finding_id),
    amount: r.amount,
    currency: r.currency,
    reason: r.reason,
    createdAt: r.created_at,
  }));
}

/** Credit notes issued for the run's findings. */
export const creditNotesOfRun = (db: Queryable, runId: string) =>
  creditNotesWhere(db, 'c.finding_id in (select id from reconciliation_findings where run_id = $1)', [runId]);

/** How many pending findings the workflow lists in the Temporal UI; the API's report lists them all. */
const BRIEF_LIMIT = 20;

export async function summarize(db: Queryable, runId: string): Promise<ReconciliationSummary> {
  const run = (await getRun(db, runId))!;
  const pending = await listFindings(db, runId, {}).then((all) => all.filter((f) => f.resolution === 'pending'));
  const pendingByKind: Partial<Record<FindingKind, number>> = {};
  for (const f of pending) pendingByKind[f.kind] = (pendingByKind[f.kind] ?? 0) + 1;
  const correctable = pending.filter((f) => f.correction !== null);
  const totals: Record<string, string> = {};
  for (const f of correctable) totals[f.currency!] = new Decimal(totals[f.currency!] ?? 0).plus(f.correction!).toFixed();
  const brief = (f: Finding): FindingBrief => ({
    id: f.id,
    kind: f.kind,
    customer: f.customer,
    invoiceId: f.invoiceId,
    description: f.description,
    correction: f.correction,
    currency: f.currency,
  });
  return {
    runId,
    status: run.status,
    period: { start: run.periodStart.toISOString(), end: run.periodEnd.toISOString() },
    customer: run.customer,
    invoicesChecked: run.invoicesChecked,
    findings: { total: run.counts.findings, pending: run.counts.pending, corrected: run.counts.corrected, dismissed: run.counts.dismissed },
    pendingByKind,
    corrections: { count: correctable.length, totals },
    pending: pending.slice(0, BRIEF_LIMIT).map(brief),
  };
}
