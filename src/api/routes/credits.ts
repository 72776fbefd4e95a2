import { Router } from 'express';
import { z } from 'zod';
import { AutoTopUpInputSchema, CreditGrantInputSchema } from '../../credits/input';
import type { CreditBalance, CreditService } from '../../credits/service';
import { grantSources, grantStatuses, ledgerEntryKinds, type AutoTopUp, type CreditGrant, type LedgerEntry } from '../../credits/store';
import { Identifier } from '../../domain/edge-schemas';
import { CurrencySchema } from '../../domain/pricing/schema';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, jsonContent, problemResponses, registry } from '../openapi';
import { PageQuerySchema, page, pageSchema } from '../pagination';
import { ProblemError, parseRequest } from '../problem';
import { unwrap } from '../refusal';

const CreditGrantSchema = z
  .object({
    id: z.uuid(),
    customer: z.string().meta({ description: 'External id of the customer' }),
    reference: z.string(),
    source: z.enum(grantSources),
    currency: z.string(),
    amount: z.string().meta({ description: 'Credit granted' }),
    remaining: z.string().meta({ description: "What is left of it: the sum of the grant's ledger entries" }),
    priority: z.number().int(),
    expires_at: z.string().nullable(),
    status: z.enum(grantStatuses).meta({ description: 'A purchase is pending until the payment provider answers' }),
    provider_charge_id: z.string().nullable(),
    decline_code: z.string().nullable(),
    created_at: z.string(),
  })
  .meta({ id: 'CreditGrant' });

const AutoTopUpSchema = z
  .object({ currency: z.string(), threshold: z.string(), amount: z.string(), enabled: z.boolean(), updated_at: z.string() })
  .meta({ id: 'CreditAutoTopUp' });

const CreditBalanceSchema = z
  .object({
    customer: z.string(),
    currency: z.string(),
    balance: z.string().meta({ description: "The sum of the customer's ledger entries in the currency" }),
    grants: z.array(CreditGrantSchema).meta({ description: 'Active grants with credit left, newest first' }),
    auto_top_up: AutoTopUpSchema.nullable(),
  })
  .meta({ id: 'CreditBalance' });

const LedgerEntrySchema = z
  .object({
    id: z.string(),
    grant_id: z.uuid(),
    kind: z.enum(ledgerEntryKinds),
    amount: z.string().meta({ description: 'Signed: grant and void (a drawdown given back) positive, drawdown and expiry negative' }),
    currency: z.string(),
    invoice_id: z.uuid().nullable(),
    balance_after: z.string().meta({ description: "The customer's balance in the currency after this entry" }),
    actor: z.string(),
    created_at: z.string(),
  })
  .meta({ id: 'CreditLedgerEntry' });

const CustomerParams = z.object({ externalId: Identifier });
const GrantParams = CustomerParams.extend({ grantId: z.uuid() });
const CurrencyQuery = z.strictObject({
  currency: CurrencySchema.optional().meta({ description: "Default: the customer's currency" }),
});
const LedgerQuery = PageQuerySchema.extend(CurrencyQuery.shape);

const security = [{ [apiKeyAuth.name]: [] }];
const tags = ['credits'];
const restricted = 'A key restricted to a customer reaches only its own.';
const path = '/v1/customers/{externalId}/credits';

registry.registerPath({
  method: 'post',
  path,
  summary: 'Top up: purchase or grant prepaid credit (idempotent on reference)',
  description:
    'Requires `billing:admin`. A purchase is charged through the payment provider (idempotency key derived from the grant) and ' +
    'credited once the provider accepts it; a declined purchase is 409 `purchase_declined`; an unknown provider outcome is 503 ' +
    '`provider_unavailable`: repeat the request with the same reference. A key restricted to a customer may purchase for it, ' +
    'not grant promotional credit.',
  tags,
  security,
  request: { params: CustomerParams, body: jsonContent(CreditGrantInputSchema) },
  responses: {
    201: { description: 'Credited', ...jsonContent(CreditGrantSchema) },
    200: { description: 'The grant with this reference, already credited', ...jsonContent(CreditGrantSchema) },
    ...problemResponses(400, 401, 403, 404, 409, 422, 503),
  },
});
registry.registerPath({
  method: 'get',
  path,
  summary: "A customer's prepaid-credit balance, grants with credit left, and automatic top-up",
  description: `Requires \`billing:read\`. ${restricted}`,
  tags,
  security,
  request: { params: CustomerParams, query: CurrencyQuery },
  responses: { 200: { description: 'The balance', ...jsonContent(CreditBalanceSchema) }, ...problemResponses(400, 401, 403, 404) },
});
registry.registerPath({
  method: 'get',
  path: `${path}/grants`,
  summary: "A customer's credit grants, any status, newest first",
  description: `Requires \`billing:read\`. ${restricted}`,
  tags,
  security,
  request: { params: CustomerParams, query: CurrencyQuery },
  responses: {
    200: { description: 'The grants', ...jsonContent(z.object({ data: z.array(CreditGrantSchema) })) },
    ...problemResponses(400, 401, 403, 404),
  },
});
registry.registerPath({
  method: 'get',
  path: `${path}/ledger`,
  summary: "A customer's credit ledger, oldest entry first",
  description: `Requires \`billing:read\`. ${restricted} Append-only: grants, drawdowns at invoice finalization, expiries, and voids.`,
  tags,
  security,
  request: { params: CustomerParams, query: LedgerQuery },
  responses: {
    200: { description: 'A page of entries', ...jsonContent(pageSchema(LedgerEntrySchema)) },
    ...problemResponses(400, 401, 403, 404),
  },
});
registry.registerPath({
  method: 'put',
  path: `${path}/auto-top-up`,
  summary: 'Set the automatic top-up of a currency',
  description:
    `Requires \`billing:admin\`. ${restricted} When the balance falls below \`threshold\`, \`amount\` is purchased through ` +
    "the payment provider, once per trigger: an invoice's drawdown, a grant's expiry, and (plans settling `credit_only`) the open " +
    "period's priced usage leaving less credit than `threshold`, which tops up before usage is refused.",
  tags,
  security,
  request: { params: CustomerParams, body: jsonContent(AutoTopUpInputSchema) },
  responses: { 200: { description: 'The setting', ...jsonContent(AutoTopUpSchema) }, ...problemResponses(400, 401, 403, 404) },
});
registry.registerPath({
  method: 'post',
  path: `${path}/grants/{grantId}/void`,
  summary: 'Void a grant: what is left of it leaves the balance (idempotent)',
  description:
    'Requires `billing:admin`; a key restricted to a customer may not. Writes one `grant_void` ledger entry for what is left of ' +
    'the grant (what was drawn stays drawn), audited; voiding again returns that entry (200). A grant with nothing left is 409 ' +
    '`nothing_to_void`. A voided purchase is not refunded: the charge at the payment provider stands.',
  tags,
  security,
  request: { params: GrantParams },
  responses: {
    201: { description: 'Voided: the void entry', ...jsonContent(LedgerEntrySchema) },
    200: { description: 'Already voided: the same entry', ...jsonContent(LedgerEntrySchema) },
    ...problemResponses(400, 401, 403, 404, 409),
  },
});

const iso = (d: Date | null) => d?.toISOString() ?? null;

export const grantToJson = (g: CreditGrant): z.infer<typeof CreditGrantSchema> => ({
  id: g.id,
  customer: g.customer,
  reference: g.reference,
  source: g.source,
  currency: g.currency,
  amount: g.amount,
  remaining: g.remaining,
  priority: g.priority,
  expires_at: iso(g.expiresAt),
  status: g.status,
  provider_charge_id: g.providerChargeId,
  decline_code: g.declineCode,
  created_at: g.createdAt.toISOString(),
});

export const autoTopUpToJson = (a: AutoTopUp): z.infer<typeof AutoTopUpSchema> => ({
  currency: a.currency,
  threshold: a.threshold,
  amount: a.amount,
  enabled: a.enabled,
  updated_at: a.updatedAt.toISOString(),
});

export const balanceToJson = (b: CreditBalance): z.infer<typeof CreditBalanceSchema> => ({
  customer: b.customer,
  currency: b.currency,
  balance: b.balance,
  grants: b.grants.map(grantToJson),
  auto_top_up: b.autoTopUp && autoTopUpToJson(b.autoTopUp),
});

export const entryToJson = (e: LedgerEntry): z.infer<typeof LedgerEntrySchema> => ({
  id: e.id,
  grant_id: e.grantId,
  kind: e.kind,
  amount: e.amount,
  currency: e.currency,
  invoice_id: e.invoiceId,
  balance_after: e.balanceAfter,
  actor: e.actor,
  created_at: e.createdAt.toISOString(),
});

function parseCursor(after: string): string {
  if (/^[1-9]\d{0,18}$/.test(after)) return after;
  throw new ProblemError('validation_failed', 'after is not a cursor returned by this endpoint.', {
    errors: [{ pointer: '#/after', detail: 'unknown cursor' }],
  });
}

/** Prepaid credits of one customer. */
export function creditsRouter(credits: CreditService): Router {
  const router = Router();

  router.post('/v1/customers/:externalId/credits', authorize('credits', 'grant'), async (req, res) => {
    const { externalId } = parseRequest(CustomerParams, req.params, 'params');
    const input = parseRequest(CreditGrantInputSchema, req.body, 'body');
    const { created, grant } = unwrap(await credits.grant(accessOf(req).principal, externalId, input));
    res.status(created ? 201 : 200).json(grantToJson(grant));
  });

  router.get('/v1/customers/:externalId/credits', authorize('credits', 'balance'), async (req, res) => {
    const { externalId } = parseRequest(CustomerParams, req.params, 'params');
    const query = parseRequest(CurrencyQuery, req.query, 'query');
    const balance = unwrap(await credits.balance(accessOf(req).principal, externalId, query.currency));
    res.json(balanceToJson(balance));
  });

  router.get('/v1/customers/:externalId/credits/grants', authorize('credits', 'grants'), async (req, res) => {
    const { externalId } = parseRequest(CustomerParams, req.params, 'params');
    const query = parseRequest(CurrencyQuery, req.query, 'query');
    const grants = unwrap(await credits.grants(accessOf(req).principal, externalId, query.currency));
    res.json({ data: grants.map(grantToJson) });
  });

  router.get('/v1/customers/:externalId/credits/ledger', authorize('credits', 'ledger'), async (req, res) => {
    const { externalId } = parseRequest(CustomerParams, req.params, 'params');
    const query = parseRequest(LedgerQuery, req.query, 'query');
    const entries = unwrap(
      await credits.ledger(accessOf(req).principal, externalId, {
        ...(query.currency ? { currency: query.currency } : {}),
        limit: query.limit + 1,
        ...(query.after === undefined ? {} : { after: parseCursor(query.after) }),
      }),
    );
    const result = page(entries, query.limit, (e) => e.id);
    res.json({ data: result.data.map(entryToJson), next_cursor: result.next_cursor });
  });

  router.post('/v1/customers/:externalId/credits/grants/:grantId/void', authorize('credits', 'void'), async (req, res) => {
    const { externalId, grantId } = parseRequest(GrantParams, req.params, 'params');
    const { created, entry } = unwrap(await credits.voidGrant(accessOf(req).principal, externalId, grantId));
    res.status(created ? 201 : 200).json(entryToJson(entry));
  });

  router.put('/v1/customers/:externalId/credits/auto-top-up', authorize('credits', 'auto_top_up'), async (req, res) => {
    const { externalId } = parseRequest(CustomerParams, req.params, 'params');
    const input = parseRequest(AutoTopUpInputSchema, req.body, 'body');
    res.json(autoTopUpToJson(unwrap(await credits.setAutoTopUp(accessOf(req).principal, externalId, input))));
  });

  return router;
}
