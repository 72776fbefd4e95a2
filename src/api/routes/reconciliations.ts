import { Router, type Request } from 'express';
import { z } from 'zod';
import { Identifier, storable, text } from '../../domain/edge-schemas';
import { findingKinds, runStatuses } from '../../domain/reconciliation';
import { parseReconciliationInput, ReconciliationInputError } from '../../domain/reconciliation-input';
import type { Result } from '../../domain/result';
import type { ReconciliationReport, ReconciliationService } from '../../reconciliations/service';
import type { CreditNote, Finding } from '../../reconciliations/store';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, jsonContent, problemResponses, registry } from '../openapi';
import { parseRequest } from '../problem';
import { unwrap } from '../refusal';

const instantText = text({ max: 64 }).meta({
  description: 'A date (midnight UTC), e.g. 2026-11-01, or an RFC 3339 instant with its offset',
  example: '2026-11-01',
});
const inputFields = ['period_start', 'period_end', 'customer', 'auto_approve'] as const;

/** The workflow's own input, checked by the same rules the workflow applies (src/domain/reconciliation.ts). */
const StartInputSchema = z
  .strictObject({
    period_start: instantText,
    period_end: instantText,
    customer: Identifier.optional().meta({ description: 'External id of the one customer to reconcile; all customers when absent' }),
    auto_approve: z.boolean().optional().meta({ description: 'Issue the credit notes without waiting for approval' }),
  })
  .superRefine((input, ctx) => {
    try {
      parseReconciliationInput(input);
    } catch (err) {
      if (!(err instanceof ReconciliationInputError)) throw err;
      const field = inputFields.find((f) => err.message.startsWith(f));
      ctx.addIssue({ code: 'custom', path: field ? [field] : [], message: err.message });
    }
  })
  .meta({ id: 'ReconciliationInput', description: 'Also the JSON input of the reconciliationWorkflow in the Temporal UI' });

const StartedSchema = z
  .object({ id: z.string().meta({ description: 'The run id, which is the Temporal workflow id' }), status_url: z.string() })
  .meta({ id: 'ReconciliationStarted' });

const FindingSchema = z
  .object({
    id: z.number().int(),
    kind: z.enum(findingKinds),
    customer: z.string().meta({ description: 'External id of the customer' }),
    invoice_id: z.uuid().nullable(),
    subject: z.string().nullable().meta({ description: 'The meter of a usage mismatch' }),
    description: z.string(),
    expected: z.record(z.string(), z.unknown()),
    actual: z.record(z.string(), z.unknown()),
    correction: z.string().nullable().meta({
      description:
        'Amount of the credit note approval issues: positive is owed back to the customer, negative is owed by the customer; null when no credit note settles it',
    }),
    currency: z.string().nullable(),
    resolution: z.enum(['pending', 'corrected', 'dismissed']),
    resolved_at: z.string().nullable(),
    resolved_by: z.string().nullable(),
    resolution_note: z.string().nullable(),
    carried_from: z.number().int().nullable().meta({ description: 'An earlier finding whose decision already covers this one' }),
    created_at: z.string(),
  })
  .meta({ id: 'ReconciliationFinding' });

const CreditNoteSchema = z
  .object({
    id: z.uuid(),
    invoice_id: z.uuid(),
    finding_id: z.number().int(),
    amount: z.string().meta({ description: 'Positive: owed back to the customer; negative: owed by the customer' }),
    currency: z.string(),
    reason: z.string(),
    created_at: z.string(),
  })
  .meta({ id: 'CreditNote' });

const ReportSchema = z
  .object({
    id: z.string(),
    status: z.enum(runStatuses),
    period: z.object({ start: z.string(), end: z.string() }).meta({ description: 'Invoices whose period starts in [start, end)' }),
    customer: z.string().nullable(),
    started_by: z.string(),
    invoices_checked: z.number().int(),
    counts: z.object({ findings: z.number().int(), pending: z.number().int(), corrected: z.number().int(), dismissed: z.number().int() }),
    findings: z.array(FindingSchema),
    credit_notes: z.array(CreditNoteSchema),
    created_at: z.string(),
    updated_at: z.string(),
    completed_at: z.string().nullable(),
  })
  .meta({ id: 'ReconciliationReport' });

// The route also takes the id's slashes unencoded, which OpenAPI path templating cannot say; the
// extension states it for tools (the contract test) that honour it.
const IdParams = z.object({ id: text({ max: 1000 }).meta({ param: { 'x-may-contain-slashes': true } }) });
const DismissInputSchema = z
  .strictObject({ reason: storable(z.string().trim().min(1).max(500)).optional() })
  .meta({ id: 'DismissFindingsInput' });

const security = [{ [apiKeyAuth.name]: [] }];
const tags = ['reconciliations'];
const admin = 'Requires `billing:admin` and a key not restricted to a customer.';
const idParam = 'The run id (the workflow id, e.g. `reconcile/2026-11-01T00:00:00.000Z/all`), URL-encoded or with its slashes as they are.';

registry.registerPath({
  method: 'post',
  path: '/v1/reconciliations',
  summary: 'Start reconciling a period (idempotent)',
  description:
    `${admin} Starts the reconciliationWorkflow under the id \`reconcile/<period_start>/<customer or all>\`; while that run is going, ` +
    'the same request returns it again. A later request for a completed run re-runs it. 409 when the id is taken by another period_end.',
  tags,
  security,
  request: { body: jsonContent(StartInputSchema) },
  responses: {
    202: { description: 'Started, or already running', ...jsonContent(StartedSchema) },
    ...problemResponses(400, 401, 403, 409, 422, 503),
  },
});
registry.registerPath({
  method: 'get',
  path: '/v1/reconciliations/{id}',
  summary: 'The report of a reconciliation run: its findings and credit notes',
  description: `Requires \`billing:read\` and a key not restricted to a customer. ${idParam}`,
  tags,
  security,
  request: { params: IdParams },
  responses: { 200: { description: 'The report', ...jsonContent(ReportSchema) }, ...problemResponses(401, 403, 404) },
});
for (const [signal, summary] of [
  [
    'approve',
    'Approve: issue one credit note per pending finding with a correction and the invoice of each missing_invoice period, then complete',
  ],
  ['retry', 'Recompute the findings (after fixing their cause)'],
  ['dismiss', 'Close every pending finding without a correction, then complete'],
] as const) {
  registry.registerPath({
    method: 'post',
    path: `/v1/reconciliations/{id}/${signal}`,
    summary,
    description: `${admin} Sends the \`${signal}\` signal to the run's workflow. ${idParam} 409 once the run is completed or canceled.`,
    tags,
    security,
    request: { params: IdParams, ...(signal === 'dismiss' ? { body: jsonContent(DismissInputSchema) } : {}) },
    responses: { 202: { description: 'Signalled', ...jsonContent(StartedSchema) }, ...problemResponses(400, 401, 403, 404, 409, 503) },
  });
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

const findingToJson = (f: Finding): z.infer<typeof FindingSchema> => ({
  id: f.id,
  kind: f.kind,
  customer: f.customer,
  invoice_id: f.invoiceId,
  subject: f.subject,
  description: f.description,
  expected: f.expected,
  actual: f.actual,
  correction: f.correction,
  currency: f.currency,
  resolution: f.resolution,
  resolved_at: iso(f.resolvedAt),
  resolved_by: f.resolvedBy,
  resolution_note: f.resolutionNote,
  carried_from: f.carriedFrom,
  created_at: f.createdAt.toISOString(),
});

const creditNoteToJson = (c: CreditNote): z.infer<typeof CreditNoteSchema> => ({
  id: c.id,
  invoice_id: c.invoiceId,
  finding_id: c.findingId,
  amount: c.amount,
  currency: c.currency,
  reason: c.reason,
  created_at: c.createdAt.toISOString(),
});

const reportToJson = ({ run, findings, creditNotes }: ReconciliationReport): z.infer<typeof ReportSchema> => ({
  id: run.id,
  status: run.status,
  period: { start: run.periodStart.toISOString(), end: run.periodEnd.toISOString() },
  customer: run.customer,
  started_by: run.startedBy,
  invoices_checked: run.invoicesChecked,
  counts: run.counts,
  findings: findings.map(findingToJson),
  credit_notes: creditNotes.map(creditNoteToJson),
  created_at: run.createdAt.toISOString(),
  updated_at: run.updatedAt.toISOString(),
  completed_at: iso(run.completedAt),
});

/** The wildcard route parameter: the id's own slashes arrive as segments, an encoded id as one. */
const runIdOf = (req: Request) => parseRequest(IdParams, { id: ([] as string[]).concat(req.params.id ?? []).join('/') }, 'params').id;

const statusUrl = (id: string) => `/v1/reconciliations/${encodeURIComponent(id)}`;

export function reconciliationsRouter(service: ReconciliationService): Router {
  const router = Router();

  router.post('/v1/reconciliations', authorize('reconciliations', 'start'), async (req, res) => {
    const input = parseRequest(StartInputSchema, req.body, 'body');
    const { id } = unwrap(await service.start(accessOf(req).principal, parseReconciliationInput(input)));
    res
      .status(202)
      .location(statusUrl(id))
      .json({ id, status_url: statusUrl(id) });
  });

  router.get('/v1/reconciliations/*id', authorize('reconciliations', 'get'), async (req, res) => {
    res.json(reportToJson(unwrap(await service.get(accessOf(req).principal, runIdOf(req)))));
  });

  const decided = (result: Result<{ id: string }>) => {
    const { id } = unwrap(result);
    return { id, status_url: statusUrl(id) };
  };
  router.post('/v1/reconciliations/*id/approve', authorize('reconciliations', 'approve'), async (req, res) => {
    res.status(202).json(decided(await service.approve(accessOf(req).principal, runIdOf(req))));
  });
  router.post('/v1/reconciliations/*id/retry', authorize('reconciliations', 'retry'), async (req, res) => {
    res.status(202).json(decided(await service.retry(accessOf(req).principal, runIdOf(req))));
  });
  router.post('/v1/reconciliations/*id/dismiss', authorize('reconciliations', 'dismiss'), async (req, res) => {
    const id = runIdOf(req);
    // Read before anything is sent: a bad body is a 400 whatever the run.
    const { reason } = parseRequest(DismissInputSchema, req.body === undefined ? {} : req.body, 'body');
    res.status(202).json(decided(await service.dismiss(accessOf(req).principal, id, reason)));
  });

  return router;
}
