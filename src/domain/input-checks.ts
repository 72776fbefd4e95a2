/*
 * Checks on raw input that need no schema library: whether PostgreSQL can store a text or an
 * instant as it is, and how input is quoted in an error message. The zod schemas of the edge
 * (edge-schemas.ts) build on them, and so do modules the workflow bundle imports, which must not
 * load zod: a billing workflow instantiates every module it imports, per run.
 */

/**
 * Whether PostgreSQL text and jsonb can hold the string exactly as it is. isWellFormed (ES2024,
 * Node 20) finds lone surrogates ten times faster than a regular expression, on the ingest path;
 * it is typed here because the project compiles against the ES2022 library.
 */
export const isWellFormed = (text: string): boolean => (text as string & { isWellFormed(): boolean }).isWellFormed();
export const isStorableText = (text: string): boolean => !text.includes('\u0000') && isWellFormed(text);

/**
 * Any input, rendered short for an error message: never recursive (the input may nest 10,000
 * deep), never long (it may be megabytes), and a string as the JSON it was sent as.
 */
export function quote(value: unknown, max = 64): string {
  if (typeof value === 'string')
    return value.length > max ? `${JSON.stringify(value.slice(0, max)).slice(0, -1)}…"` : JSON.stringify(value);
  if (value === null || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : String(value);
}

/** The instants the API accepts: from the Unix epoch to the last instant with a four-digit year, in UTC. */
export const MIN_INSTANT_MS = Date.UTC(1970, 0, 1);
export const MAX_INSTANT_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
export const RANGE_MESSAGE = 'must lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z';

/** Whether an epoch-millisecond instant lies in the range every store and the wire format represent. */
export const isRepresentableInstant = (ms: number): boolean => ms >= MIN_INSTANT_MS && ms <= MAX_INSTANT_MS;

/** A JSON object: not null, not an array. */
export const isJsonObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
