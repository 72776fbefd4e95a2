import { Router } from 'express';
import { z } from 'zod';
import { Identifier, InstantSchema, storable } from '../../domain/edge-schemas';
import { BreakdownRowSchema } from '../../domain/pricing/schema';
import type { InvoiceService } from '../../invoices/service';
import { invoiceLineTypes, invoiceStatuses, type Invoice } from '../../invoices/store';
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
    customer: z.string().meta({ description: 'External id of the customer' }),
    subscription_id: z.uuid(),
    plan: z.string(),
    currency: z.string(),
    period: z.object({ start: z.string(), end: z.string() }).meta({ description: 'Half-open: [start, end)' }),
    status: z.enum(invoiceStatuses),
    usage: z.record(z.string(), z.string()).meta({ description: 'Exact usage per meter, recomputed from the stored events' }),
    total: z.string().meta({ description: 'Sum of the rounded line amounts' }),
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
registry.registerPath({
  method: 'get',
  path: '/v1/invoices/{id}',
  summary: 'Get an invoice with its lines, their price breakdowns, and its charge attempts',
  description: `Requires \`billing:read\`. ${restricted}`,
  tags,
  security,
  request: { params: IdParams },
  responses: { 200: { description: 'The invoice', ...jsonContent(InvoiceWithChargeSchema) }, ...problemResponses(400, 401, 403, 404) },
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

export const invoiceToJson = (i: Invoice): z.infer<typeof InvoiceSchema> => ({
  id: i.id,
  customer: i.customer,
  subscription_id: i.subscriptionId,
  plan: i.planCode,
  currency: i.currency,
  period: { start: i.periodStart.toISOString(), end: i.periodEnd.toISOString() },
  status: i.status,
  usage: i.usage,
  total: i.total,
  lines: i.lines.map((l) => ({
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
    segment: l.segment && { plan: l.segment.planCode, start: l.segment.start, end: l.segment.end },
  })),
  created_at: i.createdAt.toISOString(),
  finalized_at: iso(i.finalizedAt),
  paid_at: iso(i.paidAt),
  payment_failed_at: iso(i.paymentFailedAt),
  voided_at: iso(i.voidedAt),
  void_reason: i.voidReason,
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

export function invoicesRouter(invoices: InvoiceService, charges: ChargeHistory): Router {
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

  router.get('/v1/invoices/:id', authorize('invoices', 'get'), async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'params');
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
