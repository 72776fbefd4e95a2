import { z } from 'zod';
import { Identifier, InstantSchema, jsonObject, text } from '../edge-schemas';

export const MAX_BATCH_EVENTS = 1000;
/** Serialized size limit of one event's properties, so one event cannot carry megabytes. */
export const MAX_PROPERTIES_BYTES = 8 * 1024;

// The size limit is checked where the properties are serialized for storage (once per event);
// depth and content are checked here, before anything serializes them.
const properties = jsonObject().meta({ description: `Serialized size at most ${MAX_PROPERTIES_BYTES} bytes` });

/** One usage event as an API client sends it. */
export const EventInputSchema = z
  .object({
    id: Identifier.meta({ description: 'Idempotency key, unique per customer' }),
    customer: Identifier.optional().meta({ description: 'Customer external id; implied by a key restricted to one customer' }),
    type: Identifier.meta({ description: 'Event type; names the meter it feeds' }),
    timestamp: InstantSchema.optional().meta({ description: 'RFC 3339 time the usage happened; default: when received' }),
    properties: properties.default({}),
  })
  .strict()
  .meta({ id: 'UsageEvent' });

export type EventInput = z.infer<typeof EventInputSchema>;

/** A CloudEvents 1.0 event (structured JSON mode) carrying usage: subject = customer, data = properties. */
export const CloudEventInputSchema = z
  .object({
    specversion: z.literal('1.0'),
    id: Identifier,
    source: text({ max: 1024 }),
    type: Identifier,
    subject: Identifier.optional(),
    time: InstantSchema.optional(),
    datacontenttype: text({ max: 256 }).optional(),
    data: properties.optional(),
  })
  .meta({ id: 'CloudEvent' });

export type CloudEventInput = z.infer<typeof CloudEventInputSchema>;

export function fromCloudEvent(ce: CloudEventInput): EventInput {
  return {
    id: ce.id,
    type: ce.type,
    properties: ce.data ?? {},
    ...(ce.subject !== undefined ? { customer: ce.subject } : {}),
    ...(ce.time !== undefined ? { timestamp: ce.time } : {}),
  };
}

export const eventOutcomes = ['accepted', 'duplicate', 'conflict', 'rejected'] as const;
export type EventOutcomeStatus = (typeof eventOutcomes)[number];

export interface EventOutcome {
  index: number;
  id: string | null;
  status: EventOutcomeStatus;
  /** Machine-readable reason for rejected and conflict outcomes. */
  reason?: string;
  detail?: string;
  /** Accepted more than the allowed lateness after the usage happened. */
  late?: boolean;
  /** `quota_exceeded`: when the meter's block lapses (ISO 8601 UTC), and where to raise the limit. */
  resets_at?: string;
  upgrade_url?: string;
  /** `spend_limit_reached`: where to top up credits or raise the spend cap. */
  top_up_url?: string;
}

export const EventOutcomeSchema = z
  .object({
    index: z.number().int(),
    id: z.string().nullable(),
    status: z.enum(eventOutcomes),
    reason: z.string().optional(),
    detail: z.string().optional(),
    late: z.boolean().optional(),
    resets_at: z.string().optional().meta({ description: 'quota_exceeded: when the block lapses' }),
    upgrade_url: z.string().optional().meta({ description: 'quota_exceeded: where to raise the limit' }),
    top_up_url: z.string().optional().meta({ description: 'spend_limit_reached: where to top up or raise the spend cap' }),
  })
  .meta({ id: 'EventOutcome' });
