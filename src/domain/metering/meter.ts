import { z } from 'zod';
import { Identifier, record, text } from '../edge-schemas';

export const aggregations = ['count', 'sum', 'max', 'unique_count', 'latest'] as const;
export type Aggregation = (typeof aggregations)[number];

const filterValue = z.union([text({ min: 0, max: 1024 }), z.number(), z.boolean()]);

/** A meter as created through the API; what it aggregates and from which events. */
export const MeterInputSchema = z
  .object({
    code: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, 'lowercase letters, digits, "_", "." or "-", 1–64 characters, starting with a letter or digit'),
    name: text({ max: 256 }),
    event_type: Identifier,
    aggregation: z.enum(aggregations),
    value_property: Identifier.optional(),
    filter: record(Identifier, filterValue)
      .default({})
      .meta({ description: 'Equality match on event properties; events of the type that do not match are rejected.' }),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.aggregation === 'count' && m.value_property !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['value_property'], message: 'count meters count events and take no value_property' });
    }
    if (m.aggregation !== 'count' && m.value_property === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['value_property'],
        message: `${m.aggregation} meters need the value_property that carries the value`,
      });
    }
  })
  .meta({ id: 'MeterInput' });

export type MeterInput = z.infer<typeof MeterInputSchema>;
export type FilterValue = z.infer<typeof filterValue>;

export interface Meter {
  id: string;
  code: string;
  name: string;
  eventType: string;
  aggregation: Aggregation;
  valueProperty: string | null;
  filter: Record<string, FilterValue>;
}

/** Whether an event's properties satisfy the meter's filter (every key equal). */
export function matchesFilter(meter: Meter, properties: Record<string, unknown>): boolean {
  return Object.entries(meter.filter).every(([key, expected]) => properties[key] === expected);
}
