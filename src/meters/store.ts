import { recordAudit, type AuditActor } from '../db/audit';
import type { Pool } from '../db/pool';
import type { Aggregation, FilterValue, Meter, MeterInput } from '../domain/metering/meter';
import { inTransaction, type Queryable } from '../db/transaction';

interface MeterRow {
  id: string;
  code: string;
  name: string;
  event_type: string;
  aggregation: Aggregation;
  value_property: string | null;
  filter: Record<string, FilterValue>;
  created_at: Date;
}

export type StoredMeter = Meter & { createdAt: Date };

const columns = 'id, code, name, event_type, aggregation, value_property, filter, created_at';

const toMeter = (r: MeterRow): StoredMeter => ({
  id: r.id,
  code: r.code,
  name: r.name,
  eventType: r.event_type,
  aggregation: r.aggregation,
  valueProperty: r.value_property,
  filter: r.filter,
  createdAt: r.created_at,
});

export type CreateMeterResult =
  { created: true; meter: StoredMeter } | { created: false; clash: 'code' | 'event_type'; meter: StoredMeter };

/** Creates the meter, or names the one whose code or event type it clashes with. A creation and its audit entry commit together. */
export async function createMeter(pool: Pool, input: MeterInput, actor: AuditActor): Promise<CreateMeterResult> {
  const created = await inTransaction(pool, async (tx) => {
    const { rows } = await tx.query<MeterRow>(
      `insert into meters (code, name, event_type, aggregation, value_property, filter)
       values ($1, $2, $3, $4, $5, $6) on conflict do nothing returning ${columns}`,
      [input.code, input.name, input.event_type, input.aggregation, input.value_property ?? null, JSON.stringify(input.filter)],
    );
    if (!rows[0]) return undefined;
    const meter = toMeter(rows[0]);
    await recordAudit(tx, {
      actor,
      action: 'meter.created',
      subjectType: 'meter',
      subjectId: meter.code,
      details: {
        name: meter.name,
        event_type: meter.eventType,
        aggregation: meter.aggregation,
        value_property: meter.valueProperty,
        filter: meter.filter,
      },
    });
    return meter;
  });
  if (created) return { created: true, meter: created };
  const existing = await pool.query<MeterRow>(
    `select ${columns} from meters where code = $1 or event_type = $2 order by code = $1 desc limit 1`,
    [input.code, input.event_type],
  );
  const meter = toMeter(existing.rows[0]!);
  return { created: false, clash: meter.code === input.code ? 'code' : 'event_type', meter };
}

export async function getMeter(pool: Queryable, code: string): Promise<StoredMeter | undefined> {
  const { rows } = await pool.query<MeterRow>(`select ${columns} from meters where code = $1`, [code]);
  return rows[0] && toMeter(rows[0]);
}

export async function listMeters(pool: Pool, limit: number, after?: string): Promise<StoredMeter[]> {
  const { rows } = await pool.query<MeterRow>(
    `select ${columns} from meters where ($2::text is null or code > $2) order by code limit $1`,
    [limit, after ?? null],
  );
  return rows.map(toMeter);
}

export async function allMeters(pool: Pool): Promise<StoredMeter[]> {
  const { rows } = await pool.query<MeterRow>(`select ${columns} from meters`);
  return rows.map(toMeter);
}
