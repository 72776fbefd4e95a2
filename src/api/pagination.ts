import { z } from 'zod';
import { CursorSchema } from '../domain/edge-schemas';

/** Strict, like every query schema: a misspelt parameter (`?limt=10`) is refused rather than ignored. */
export const PageQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  after: CursorSchema.optional(),
});

/** Fetches one row more than asked to know whether another page exists. */
export function page<T>(rows: T[], limit: number, cursorOf: (row: T) => string) {
  const data = rows.slice(0, limit);
  const last = data[data.length - 1];
  return { data, next_cursor: rows.length > limit && last ? cursorOf(last) : null };
}

export const pageSchema = <T extends z.ZodType>(item: T) => z.object({ data: z.array(item), next_cursor: z.string().nullable() });
