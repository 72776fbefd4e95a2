import type { Pool } from '../db/pool';
import { canonicalJson } from '../domain/metering/canonical-json';
import type { MeterInput } from '../domain/metering/meter';
import { ok, refuse, type Ok, type Refusal, type Result } from '../domain/result';
import { auditActorOf, type Actor } from '../keys/principal';
import type { MeterCatalog } from './catalog';
import { createMeter, getMeter, listMeters, type StoredMeter } from './store';

/**
 * Why a meter cannot be created: its code holds another definition, or its event type feeds
 * another meter. The meter it collides with travels with it; each adapter decides whether to show it.
 */
export type MeterConflict = Refusal<'meter_exists' | 'event_type_taken'> & { details: { existing: StoredMeter } };

/** Definitions compare without creation time, in canonical form (jsonb reorders the filter's keys). */
const sameDefinition = (meter: StoredMeter, input: MeterInput): boolean =>
  canonicalJson([meter.code, meter.name, meter.eventType, meter.aggregation, meter.valueProperty, meter.filter]) ===
  canonicalJson([input.code, input.name, input.event_type, input.aggregation, input.value_property ?? null, input.filter]);

/** The meter catalog every customer shares, as every adapter reaches it. */
export class MeterService {
  constructor(
    private readonly pool: Pool,
    /** The ingest path's in-memory catalog, told of meters created through this process at once. */
    private readonly catalog?: MeterCatalog,
  ) {}

  /**
   * Creates the meter; the same definition again returns it (created: false). Another definition
   * under its code, or another meter of its event type, is a conflict whose details hold `existing`.
   */
  async create(actor: Actor, input: MeterInput): Promise<Ok<{ created: boolean; meter: StoredMeter }> | MeterConflict> {
    const result = await createMeter(this.pool, input, auditActorOf(actor));
    if (result.created) {
      this.catalog?.add(result.meter);
      return ok({ created: true, meter: result.meter });
    }
    const details = { existing: result.meter };
    if (result.clash === 'event_type') {
      const message = `Events of type "${input.event_type}" already feed meter "${result.meter.code}"; an event type feeds one meter.`;
      return { ...refuse('conflict', 'event_type_taken', message), details };
    }
    if (!sameDefinition(result.meter, input)) {
      return { ...refuse('conflict', 'meter_exists', `Meter "${input.code}" already exists with another definition.`), details };
    }
    return ok({ created: false, meter: result.meter });
  }

  async get(code: string): Promise<Result<StoredMeter, 'unknown_meter'>> {
    const meter = await getMeter(this.pool, code);
    return meter ? ok(meter) : refuse('not_found', 'unknown_meter', `No meter "${code}".`);
  }

  list(limit: number, after?: string): Promise<StoredMeter[]> {
    return listMeters(this.pool, limit, after);
  }
}
