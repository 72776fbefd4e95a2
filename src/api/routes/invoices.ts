import { Router, type Response } from 'express';
import { z } from 'zod';
import { Identifier, InstantSchema, storable } from '../../domain/edge-schemas';
import { BreakdownRowSchema } from '../../domain/pricing/schema';
import type { InvoiceDocument } from '../../invoices/documents/render';
import type { InvoiceService, UpcomingInvoice } from '../../invoices/service';
import { invoiceKinds, invoiceLineTypes, invoiceStatuses, type Invoice, type InvoiceLine } from '../../invoices/store';
import type { ChargeRecord } from '../../payments/store';
import type { ChargeHistory } from '../../payments/charge-history';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, jsonContent, problemResponses, registry } from '../openapi';
import { PageQuerySchema, page, pageSchema } from '../pagination';
import { ProblemError, parseRequest } from '../problem';
import { unwrap } from '../refusal';

const InvoiceLineSchema = z
  .object({
    position: z.number().int(),
    type: z.enum(invoiceLineTypes),
    meter: z.string().nullable(),
    model: z.string().nullable(),
    quantity: z.string().nullable(),
    description: z.string(),
    exact_amount: z.string().meta({ description: 'Unrounded amount at full precision' }),
    amount: z.string().meta({ description: "Rounded once to the currency's minor unit" }),
    breakdown: z.array(BreakdownRowSchema),
    adjusts: z
      .object({ invoice_id: z.uuid(), period_start: z.string(), period_end: z.string() })
      .nullable()
      .meta({ description: 'For an adjustment line: the finalized invoice whose period the late usage belongs to' }),
    coupon: z
      .object({ code: z.string(), application_id: z.uuid() })
      .nullable()
      .meta({ description: 'For a discount line: the coupon and its application to the customer' }),
    tax: z
      .object({
        rate_id: z.uuid(),
        code: z.string(),
        percentage: z.string(),
        inclusive: z.boolean().meta({ description: 'The other lines already contain this tax: it does not add to the total' }),
        base: z.string().meta({ description: 'What the rate applies to: the net (exclusive) or the gross containing it (inclusive)' }),
      })
      .nullable()
      .meta({ description: 'For a tax line: its rate' }),
    segment: z
      .object({ plan: z.string(), start: z.string(), end: z.string() })
      .nullable()
      .meta({
        description:
          'When plan changes split the period: the plan and half-open [start, end) of the segment this line bills (an adjustment: ' +
          'the segment it corrects). Null on a period billed on one plan.',
      }),
  })
  .meta({ id: 'InvoiceLine' });

const ChargeSchema = z
  .object({
    amount: z.string(),
    currency: z.string(),
    status: z.enum(['pending', 'succeeded', 'failed']),
    provider_charge_id: z.string().nullable(),
    attempts: z.array(
      z.object({
        attempt: z.number().int(),
        idempotency_key: z.string(),
        status: z.enum(['pending', 'succeeded', 'declined']),
        provider_charge_id: z.string().nullable(),
        decline_code: z.string().nullable(),
        requested_at: z.string(),
        completed_at: z.string().nullable(),
      }),
    ),
  })
  .meta({ id: 'InvoiceCharge', description: 'The payment collecting an invoice, with each attempt at the provider' });

const InvoiceSchema = z
  .object({
    id: z.uuid(),
    number: z
      .string()
      .nullable()
      .meta({ description: 'PREFIX-YYYY-NNNNNN, sequential without gaps per seller and year, given at finalization; null for a draft' }),
    customer: z.string().meta({ description: 'External id of the customer' }),
    subscription_id: z.uuid(),
    plan: z.string(),
    currency: z.string(),
    kind: z.enum(invoiceKinds).meta({
      description:
        "'period': the period's own invoice (its full price less what interim invoices billed); 'interim': issued when the open " +
        "period's priced usage reached a spend threshold (progressive billing)",
    }),
    sequence: z.number().int().meta({ description: "0 for the period invoice; 1, 2, … for the period's interim invoices" }),
    threshold: z.string().nullable().meta({ description: 'The spend threshold an interim invoice was issued for' }),
    period: z.object({ start: z.string(), end: z.string() }).meta({
      description: 'Half-open: [start, end). An interim invoice ends at the instant it was cut',
    }),
    status: z.enum(invoiceStatuses),
    usage: z.record(z.string(), z.string()).meta({ description: 'Exact usage per meter, recomputed from the stored events' }),
    total: z
      .string()
      .meta({ description: 'Sum of the rounded line amounts, except inclusive tax lines (which the others contain): the gross' }),
    net: z.string().meta({ description: 'Before tax, after discounts' }),
    tax: z.string().meta({ description: 'Sum of the tax lines' }),
    gross: z.string().meta({ description: 'net + tax, equal to total' }),
    lines: z.array(InvoiceLineSchema),
    created_at: z.string(),
    finalized_at: z.string().nullable(),
    paid_at: z.string().nullable(),
    payment_failed_at: z.string().nullable(),
    voided_at: z.string().nullable(),
    void_reason: z.string().nullable(),
  })
  .meta({ id: 'Invoice' });

const InvoiceWithChargeSchema = InvoiceSchema.extend({ charge: ChargeSchema.nullable() }).meta({ id: 'InvoiceWithCharge' });

const ListQuerySchema = PageQuerySchema.extend({
  customer: Identifier.optional().meta({ description: 'External id of a customer' }),
  status: z.enum(invoiceStatuses).optional(),
  period_from: InstantSchema.optional().meta({ description: 'Invoices whose period starts at or after this instant' }),
  period_to: InstantSchema.optional().meta({ description: '…and before this one' }),
});
const UpcomingInvoiceSchema = z
  .object({
    customer: z.string().meta({ description: 'External id of the customer' }),
    subscription_id: z.uuid(),
    plan: z.string(),
    currency: z.string(),
    period: z.object({ start: z.string(), end: z.string() }).meta({ description: 'The current period, half-open: [start, end)' }),
    usage: z.record(z.string(), z.string()).meta({ description: 'Exact usage per meter so far this period, from the stored events' }),
    total: z.string().meta({ description: 'Sum of the rounded line amounts' }),
    lines: z.array(InvoiceLineSchema),
    as_of: z.string().meta({ description: 'When it was priced' }),
  })
  .meta({
    id: 'UpcomingInvoice',
    description: "An estimate: the current period's invoice if it closed now, priced live and not saved",
  });
const UpcomingQuerySchema = z.strictObject({
  customer: Identifier.optional().meta({ description: 'External id of a customer; implied by a customer-restricted key' }),
});
const IdParams = z.object({ id: z.uuid() });
const VoidInputSchema = z.strictObject({ reason: storable(z.string().trim().min(1).max(500)) }).meta({ id: 'VoidInvoiceInput' });

const security = [{ [apiKeyAuth.name]: [] }];
const tags = ['invoices'];
const restricted = "A key restricted to a customer sees only that customer's invoices.";

registry.registerPath({
  method: 'get',
  path: '/v1/invoices',
  summary: 'List invoices, newest period first',
  description: `Requires \`billing:read\`. ${restricted}`,
  tags,
  security,
  request: { query: ListQuerySchema },
  responses: {
    200: { description: 'A page of invoices with their lines', ...jsonContent(pageSchema(InvoiceSchema)) },
    ...problemResponses(400, 401, 403),
  },
});
const documentNote =
  'The document is rendered from the frozen invoice: seller and customer as snapshotted at finalization, number, period, lines ' +
  'with their price breakdowns (grouped by plan segment), discounts, taxes, credits applied, net / tax / gross, amount due and ' +
  'payment status; the same invoice in the same state always gives the same bytes. A draft has no document (409 ' +
  '`invoice_not_issued`), nor has a draft voided before finalization; a void invoice that was issued renders marked VOID.';
const htmlContent = { 'text/html': { schema: z.string().meta({ description: 'A self-contained, printable HTML page' }) } };
const pdfContent = { 'application/pdf': { schema: z.string().meta({ description: 'An A4 PDF document', format: 'binary' }) } };

registry.registerPath({
  method: 'get',
  path: '/v1/invoices/upcoming',
  summary: "The customer's upcoming invoice: the current period priced live, as its invoice would be if it closed now",
  description: `Requires \`billing:read\`. Nothing is saved. ${restricted}`,
  tags,
  security,
  request: { query: UpcomingQuerySchema },
  responses: {
    200: { description: 'The estimate', ...jsonContent(UpcomingInvoiceSchema) },
    ...problemResponses(400, 401, 403, 404),
  },
});
registry.registerPath({
  method: 'get',
  path: '/v1/invoices/{id}.pdf',
  summary: "Get an invoice's document as PDF",
  description: `Requires \`billing:read\`. ${restricted} ${documentNote}`,
  tags,
  security,
  request: { params: IdParams },
  responses: { 200: { description: 'The invoice document', content: pdfContent }, ...problemResponses(400, 401, 403, 404, 409) },
});
registry.registerPath({
  method: 'get',
  path: '/v1/invoices/{id}.html',
  summary: "Get an invoice's document as printable HTML",
  description: `Requires \`billing:read\`. ${restricted} ${documentNote}`,
  tags,
  security,
  request: { params: IdParams },
  responses: { 200: { description: 'The invoice document', content: htmlContent }, ...problemResponses(400, 401, 403, 404, 409) },
});
registry.registerPath({
  method: 'get',
  path: '/v1/invoices/{id}',
  summary: 'Get an invoice with its lines, their price breakdowns, and its charge attempts; or its document',
  description:
    `Requires \`billing:read\`. ${restricted} Content negotiation: JSON unless \`Accept\` prefers \`text/html\` or ` +
    '`application/pdf`, which answer the invoice document as `GET /v1/invoices/{id}.html` and `.pdf` do; an `Accept` that ' +
    `allows none of the three is 406. ${documentNote}`,
  tags,
  security,
  request: { params: IdParams },
  responses: {
    200: {
      description: 'The invoice (JSON), or its document',
      content: { ...jsonContent(InvoiceWithChargeSchema).content, ...htmlContent, ...pdfContent },
    },
    ...problemResponses(400, 401, 403, 404, 406, 409),
  },
});
registry.registerPath({
  method: 'post',
  path: '/v1/invoices/{id}/void',
  summary: 'Void an invoice with a reason (idempotent)',
  description:
    'Requires `billing:admin` and a key not restricted to a customer. A void invoice is no longer collected and late usage no ' +
    'longer adjusts it. A paid invoice cannot be voided (409): money moved, which calls for a refund at the provider.',
  tags,
  security,
  request: { params: IdParams, body: jsonContent(VoidInputSchema) },
  responses: { 200: { description: 'The void invoice', ...jsonContent(InvoiceSchema) }, ...problemResponses(400, 401, 403, 404, 409) },
});

const iso = (d: Date | null) => d?.toISOString() ?? null;

const lineToJson = (l: InvoiceLine): z.infer<typeof InvoiceLineSchema> => ({
  position: l.position,
  type: l.type,
  meter: l.meter,
  model: l.model,
  quantity: l.quantity,
  description: l.description,
  exact_amount: l.exactAmount,
  amount: l.amount,
  breakdown: l.breakdown,
  adjusts: l.adjusts && {
    invoice_id: l.adjusts.invoiceId,
    period_start: l.adjusts.periodStart.toISOString(),
    period_end: l.adjusts.periodEnd.toISOString(),
  },
  coupon: l.discount ? { code: l.discount.couponCode, application_id: l.discount.applicationId } : null,
  tax: l.tax
    ? { rate_id: l.tax.rateId, code: l.tax.code, percentage: l.tax.percentage, inclusive: l.tax.inclusive, base: l.tax.base }
    : null,
  segment: l.segment && { plan: l.segment.planCode, start: l.segment.start, end: l.segment.end },
});

export const invoiceToJson = (i: Invoice): z.infer<typeof InvoiceSchema> => ({
  id: i.id,
  number: i.number,
  customer: i.customer,
  subscription_id: i.subscriptionId,
  plan: i.planCode,
  currency: i.currency,
  kind: i.kind,
  sequence: i.sequence,
  threshold: i.threshold,
  period: { start: i.periodStart.toISOString(), end: i.periodEnd.toISOString() },
  status: i.status,
  usage: i.usage,
  total: i.total,
  net: i.totals.net,
  tax: i.totals.tax,
  gross: i.totals.gross,
  lines: i.lines.map(lineToJson),
  created_at: i.createdAt.toISOString(),
  finalized_at: iso(i.finalizedAt),
  paid_at: iso(i.paidAt),
  payment_failed_at: iso(i.paymentFailedAt),
  voided_at: iso(i.voidedAt),
  void_reason: i.voidReason,
});

const upcomingToJson = (u: UpcomingInvoice): z.infer<typeof UpcomingInvoiceSchema> => ({
  customer: u.customer,
  subscription_id: u.subscriptionId,
  plan: u.planCode,
  currency: u.currency,
  period: { start: u.periodStart.toISOString(), end: u.periodEnd.toISOString() },
  usage: u.usage,
  total: u.total,
  lines: u.lines.map((l, i) => lineToJson({ ...l, position: i + 1 })),
  as_of: u.asOf.toISOString(),
});

export const chargeToJson = (c: ChargeRecord): z.infer<typeof ChargeSchema> => ({
  amount: c.amount,
  currency: c.currency,
  status: c.status,
  provider_charge_id: c.providerChargeId,
  attempts: c.attempts.map((a) => ({
    attempt: a.attempt,
    idempotency_key: a.idempotencyKey,
    status: a.status,
    provider_charge_id: a.providerChargeId,
    decline_code: a.declineCode,
    requested_at: a.requestedAt.toISOString(),
    completed_at: iso(a.completedAt),
  })),
});

const cursorOf = (i: Invoice) => Buffer.from(JSON.stringify([i.periodStart.toISOString(), i.id])).toString('base64url');
function parseCursor(after: string): { periodStart: Date; id: string } {
  try {
    const [start, id] = z.tuple([InstantSchema, z.uuid()]).parse(JSON.parse(Buffer.from(after, 'base64url').toString('utf8')));
    return { periodStart: new Date(start), id };
  } catch {
    throw new ProblemError('validation_failed', 'after is not a cursor returned by this endpoint.', {
      errors: [{ pointer: '#/after', detail: 'unknown cursor' }],
    });
  }
}

/** What `GET /v1/invoices/{id}` can answer, JSON first: it is the answer to no Accept or to any. */
const representations = ['application/json', 'text/html', 'application/pdf'] as const;

function sendDocument(res: Response, document: InvoiceDocument): void {
  res
    .status(200)
    .set({
      'Content-Type': document.contentType,
      'Content-Disposition': `inline; filename="${document.filename}"`,
      // The page needs nothing but its inline styles; anything else it might contain is inert.
      'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'",
    })
    .send(document.body);
}

/** `lookbackInvoices`: how many earlier invoices late usage may adjust (config LATE_USAGE_LOOKBACK_INVOICES), as the period's draft will. */
export function invoicesRouter(invoices: InvoiceService, charges: ChargeHistory, opts: { lookbackInvoices: number }): Router {
  const router = Router();

  router.get('/v1/invoices', authorize('invoices', 'list'), async (req, res) => {
    const query = parseRequest(ListQuerySchema, req.query, 'query');
    const listed = await invoices.list(
      accessOf(req).principal,
      {
        ...(query.customer ? { customer: query.customer } : {}),
        ...(query.status ? { status: query.status } : {}),
        ...(query.period_from ? { periodFrom: new Date(query.period_from) } : {}),
        ...(query.period_to ? { periodTo: new Date(query.period_to) } : {}),
      },
      query.limit + 1,
      query.after === undefined ? undefined : parseCursor(query.after),
    );
    // A customer the key cannot see, or none at all, has no invoices: an empty page, not a 404.
    const result = page(listed.ok ? listed.value : [], query.limit, cursorOf);
    res.json({ data: result.data.map(invoiceToJson), next_cursor: result.next_cursor });
  });

  // Before /:id, which would read "upcoming" as an invoice id.
  router.get('/v1/invoices/upcoming', authorize('invoices', 'upcoming'), async (req, res) => {
    const query = parseRequest(UpcomingQuerySchema, req.query, 'query');
    const access = accessOf(req);
    const customer = access.customerNamed(query.customer);
    if (!customer)
      throw new ProblemError('validation_failed', 'Invalid query: customer is required.', {
        errors: [{ pointer: '#/customer', detail: 'required' }],
      });
    res.json(upcomingToJson(unwrap(await invoices.upcoming(access.principal, customer, opts.lookbackInvoices))));
  });
  // Before `/v1/invoices/:id`, whose id would otherwise take the extension.
  for (const format of ['pdf', 'html'] as const) {
    router.get(`/v1/invoices/:id.${format}`, authorize('invoices', `get_${format}`), async (req, res) => {
      const { id } = parseRequest(IdParams, req.params, 'params');
      sendDocument(res, unwrap(await invoices.document(accessOf(req).principal, id, format)));
    });
  }

  router.get('/v1/invoices/:id', authorize('invoices', 'get'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    res.vary('Accept');
    const representation = req.accepts([...representations]);
    if (representation === false)
      throw new ProblemError('not_acceptable', `An invoice is served as ${representations.join(', ')}; the request accepts none of them.`, {
        acceptable: representations,
      });
    if (representation !== 'application/json') {
      const format = representation === 'text/html' ? 'html' : 'pdf';
      return sendDocument(res, unwrap(await invoices.document(accessOf(req).principal, id, format)));
    }
    const invoice = unwrap(await invoices.get(accessOf(req).principal, id));
    const charge = await charges.of(invoice.id);
    res.json({ ...invoiceToJson(invoice), charge: charge ? chargeToJson(charge) : null });
  });

  router.post('/v1/invoices/:id/void', authorize('invoices', 'void'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
    const { reason } = parseRequest(VoidInputSchema, req.body, 'body');
    const { invoice } = unwrap(await invoices.void(accessOf(req).principal, id, reason));
    res.json(invoiceToJson(invoice));
  });

  return router;
}
