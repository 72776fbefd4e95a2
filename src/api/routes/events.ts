import { Router, type Request } from 'express';
import { z } from 'zod';
import type { Clock } from '../../clock';
import {
  CloudEventInputSchema,
  EventInputSchema,
  EventOutcomeSchema,
  fromCloudEvent,
  MAX_BATCH_EVENTS,
  type EventOutcome,
} from '../../domain/metering/event-input';
import { secondsUntil } from '../../entitlements/store';
import type { EventParser, IngestService } from '../../metering/ingest';
import { IngestQueueFull } from '../../metering/ingest-writer';
import { accessOf, authorize } from '../authorization';
import { apiKeyAuth, problemResponses, ProblemSchema, registry } from '../openapi';
import { ProblemError, parseRequest, type ProblemCode } from '../problem';

const JSON_TYPE = 'application/json';
const CE_TYPE = 'application/cloudevents+json';
const CE_BATCH_TYPE = 'application/cloudevents-batch+json';

const IngestQuerySchema = z.strictObject({
  atomic: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true')
    .meta({ description: 'All-or-nothing: if any event fails, none is stored' }),
});

const BatchResultSchema = z
  .object({
    accepted: z.number().int(),
    duplicate: z.number().int(),
    conflict: z.number().int(),
    rejected: z.number().int(),
    results: z.array(EventOutcomeSchema),
  })
  .meta({ id: 'IngestResult' });

const SpendLimitProblemSchema = ProblemSchema.extend({
  reason: z.literal('spend_limit_reached').optional(),
  topUpUrl: z
    .string()
    .meta({ description: 'Where this customer tops up credits or raises the spend cap (TOP_UP_URL, its `{customer}` filled in)' }),
}).meta({ id: 'SpendLimitProblem', description: 'RFC 9457 problem details of a spend-limit refusal' });

registry.registerPath({
  method: 'post',
  path: '/v1/events',
  summary: 'Ingest usage events: one event, or a batch of up to 1,000',
  description:
    'A 2xx means every stored event is committed. Events are deduplicated per customer on `id`: the same id with the ' +
    'same payload is a `duplicate` (counted once), with another payload a `conflict`. Valid events of a batch are stored ' +
    'even when others are rejected, unless `atomic=true`. Also accepts CloudEvents (`application/cloudevents+json`, ' +
    '`application/cloudevents-batch+json`: subject = customer, time = timestamp, data = properties). Body limit: 5 MB.',
  tags: ['events'],
  security: [{ [apiKeyAuth.name]: [] }],
  request: {
    query: IngestQuerySchema,
    body: {
      content: {
        [JSON_TYPE]: { schema: z.union([EventInputSchema, z.array(EventInputSchema).max(MAX_BATCH_EVENTS)]) },
        [CE_TYPE]: { schema: CloudEventInputSchema },
        [CE_BATCH_TYPE]: { schema: z.array(CloudEventInputSchema).max(MAX_BATCH_EVENTS) },
      },
    },
  },
  responses: {
    201: { description: 'Single event stored', content: { [JSON_TYPE]: { schema: EventOutcomeSchema } } },
    200: {
      description: 'Batch processed (per-event results), or a single duplicate (its outcome)',
      content: { [JSON_TYPE]: { schema: z.union([BatchResultSchema, EventOutcomeSchema]) } },
    },
    ...problemResponses(400, 401, 403, 409, 413, 415, 422),
    402: {
      description:
        "Spend limit reached (/problems/spend_limit_reached): the subscription's spend cap, or the credit balance of a credit_only plan, is spent for the period (past its grace " +
        'period); nothing was stored. Top up or raise the cap at `topUpUrl`; no Retry-After, since waiting adds no money.',
      content: { 'application/problem+json': { schema: SpendLimitProblemSchema } },
    },
    429: {
      ...problemResponses(429)[429],
      headers: {
        'Retry-After': {
          description: 'Seconds to wait; on a quota refusal only when the quota reset is known',
          required: false,
          schema: { type: 'integer' },
        },
      },
    },
    503: {
      ...problemResponses(503)[503],
      description: 'The ingest queue is full (/problems/unavailable): nothing was stored; retry shortly',
      headers: { 'Retry-After': { description: 'Seconds to wait', required: true, schema: { type: 'integer' } } },
    },
  },
});

const parseCloudEvent: EventParser = (item) => {
  const ce = CloudEventInputSchema.safeParse(item);
  return ce.success ? { success: true, data: fromCloudEvent(ce.data) } : ce;
};

/** The problem a failed single event (or a batch where nothing was stored) maps to. */
function problemCode(o: EventOutcome): ProblemCode {
  if (o.status === 'conflict') return 'conflict';
  if (o.reason === 'invalid_event' || o.reason === 'missing_customer') return 'validation_failed';
  if (o.reason === 'quota_exceeded') return 'quota_exceeded';
  if (o.reason === 'spend_limit_reached') return 'spend_limit_reached';
  return 'unprocessable';
}

/** A quota refusal tells the client when to come back: the earliest reset among the refused events. */
function retryAfter(failures: readonly EventOutcome[], clock: Clock): Record<string, string> {
  const resets = failures.flatMap((o) => (o.reason === 'quota_exceeded' && o.resets_at ? [Date.parse(o.resets_at)] : []));
  return resets.length ? { 'Retry-After': String(secondsUntil(new Date(Math.min(...resets)), clock.now())) } : {};
}

/** A spend-limit refusal says where to top up (`topUpUrl`); it has no Retry-After: waiting does not add money. */
const topUp = (o: EventOutcome) => (o.reason === 'spend_limit_reached' ? { topUpUrl: o.top_up_url } : {});

function readBody(req: Request): { items: unknown[]; single: boolean; parse?: EventParser } {
  const body: unknown = req.body;
  if (req.is(CE_BATCH_TYPE) || req.is(CE_TYPE)) {
    const single = Boolean(req.is(CE_TYPE));
    if (single ? Array.isArray(body) || typeof body !== 'object' : !Array.isArray(body)) {
      throw new ProblemError('validation_failed', single ? 'Expected one CloudEvent object.' : 'Expected a JSON array of CloudEvents.');
    }
    return { items: single ? [body] : (body as unknown[]), single, parse: parseCloudEvent };
  }
  if (!req.is(JSON_TYPE)) {
    throw new ProblemError('unsupported_media_type', `Send ${JSON_TYPE}, ${CE_TYPE} or ${CE_BATCH_TYPE}.`);
  }
  if (Array.isArray(body)) return { items: body, single: false };
  if (typeof body === 'object' && body !== null) return { items: [body], single: true };
  throw new ProblemError('validation_failed', 'Expected an event object or an array of events.');
}

export function eventsRouter(ingest: IngestService, clock: Clock): Router {
  const router = Router();

  router.post('/v1/events', authorize('events', 'ingest'), async (req, res) => {
    const query = parseRequest(IngestQuerySchema, req.query, 'query');
    const { items, single, parse } = readBody(req);
    if (items.length === 0) throw new ProblemError('validation_failed', 'The batch is empty.');
    if (items.length > MAX_BATCH_EVENTS) {
      throw new ProblemError('payload_too_large', `A batch holds at most ${MAX_BATCH_EVENTS} events; got ${items.length}.`);
    }
    const { outcomes, rolledBack } = await ingest.ingest(items, accessOf(req).principal, query.atomic, parse).catch((err: unknown) => {
      throw err instanceof IngestQueueFull ? new ProblemError('unavailable', err.message, {}, { 'Retry-After': '1' }) : err;
    });

    if (single) {
      const o = outcomes[0]!;
      if (o.status === 'accepted' || o.status === 'duplicate') {
        res.status(o.status === 'accepted' ? 201 : 200).json(o);
        return;
      }
      const quota = o.reason === 'quota_exceeded' ? { resets_at: o.resets_at, upgrade_url: o.upgrade_url } : {};
      throw new ProblemError(
        problemCode(o),
        o.detail ?? o.reason ?? o.status,
        { reason: o.reason, ...quota, ...topUp(o), event: o },
        retryAfter([o], clock),
      );
    }

    const counts = { accepted: 0, duplicate: 0, conflict: 0, rejected: 0 };
    for (const o of outcomes) counts[o.status]++;
    if (rolledBack || counts.accepted + counts.duplicate === 0) {
      const failures = outcomes.filter((o) => o.status === 'conflict' || (o.status === 'rejected' && o.reason !== 'batch_rolled_back'));
      const code = failures.every((o) => o.status === 'conflict')
        ? 'conflict'
        : problemCode(failures.find((o) => o.status === 'rejected')!);
      throw new ProblemError(
        code,
        `${rolledBack ? 'Atomic batch rolled back, nothing stored' : 'No event of the batch was stored'}: ${failures.length} event(s) failed, first at index ${failures[0]!.index} (${failures[0]!.reason}).`,
        {
          ...(code === 'spend_limit_reached' ? topUp(failures.find((o) => o.reason === 'spend_limit_reached')!) : {}),
          errors: failures.map((o) => ({ pointer: `#/${o.index}`, reason: o.reason, detail: o.detail ?? o.reason })),
          ...counts,
          results: outcomes,
        },
        code === 'quota_exceeded' ? retryAfter(failures, clock) : {},
      );
    }
    res.status(200).json({ ...counts, results: outcomes });
  });

  return router;
}
