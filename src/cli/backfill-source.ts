import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../domain/edge-schemas';
import { CliError, exitCodes } from './context';

export const backfillFormats = ['ndjson', 'csv'] as const;
export type BackfillFormat = (typeof backfillFormats)[number];

/** One line of the file, and where it ends (bytes, for progress): an event to send as it is, or a line that is not one, with why. */
export type SourceItem = { line: number; endByte: number } & (
  { event: Record<string, unknown> } | { malformed: { reason: 'malformed_line'; detail: string; raw: string } }
);

/** The format named by the file's extension, if it names one. */
export function formatOf(file: string): BackfillFormat | undefined {
  const ext = /\.([a-z]+)$/i.exec(file)?.[1]?.toLowerCase();
  if (ext === 'ndjson' || ext === 'jsonl') return 'ndjson';
  if (ext === 'csv') return 'csv';
  return undefined;
}

class CsvLineError extends Error {}

/**
 * One line's fields under RFC 4180 quoting (`""` is a quote inside a quoted field). A record is
 * one line here, so a broken quote spoils that line alone and resuming by line count is exact.
 */
export function splitCsvLine(line: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let value = '';
      let from = i + 1;
      for (;;) {
        const quote = line.indexOf('"', from);
        if (quote === -1) throw new CsvLineError(`unterminated quoted field ${fields.length + 1}`);
        value += line.slice(from, quote);
        if (line[quote + 1] !== '"') {
          i = quote + 1;
          break;
        }
        value += '"';
        from = quote + 2;
      }
      fields.push(value);
      if (i === line.length) return fields;
      if (line[i] !== ',') throw new CsvLineError(`text after the closing quote of field ${fields.length}`);
      i += 1;
    } else {
      const comma = line.indexOf(',', i);
      const value = comma === -1 ? line.slice(i) : line.slice(i, comma);
      if (value.includes('"')) throw new CsvLineError(`a quote inside unquoted field ${fields.length + 1}`);
      fields.push(value);
      if (comma === -1) return fields;
      i = comma + 1;
    }
  }
}

const fixedColumns = new Set(['id', 'customer', 'type', 'timestamp']);

/** Maps a CSV row to the event the API takes: empty cells are absent, every other column is a property. */
function csvMapper(header: string[]): (fields: string[]) => Record<string, unknown> {
  return (fields) => {
    const event: Record<string, unknown> = {};
    const properties: Record<string, string> = {};
    header.forEach((name, i) => {
      const value = fields[i]!;
      if (value === '') return;
      if (fixedColumns.has(name)) event[name] = value;
      else properties[name] = value;
    });
    event.properties = properties;
    return event;
  };
}

function parseHeader(line: string, file: string): string[] {
  let header: string[];
  try {
    header = splitCsvLine(line).map((name) => name.trim());
  } catch (err) {
    throw new CliError(`${file}: the header row is not valid CSV: ${(err as Error).message}`, exitCodes.cannotRun);
  }
  const missing = ['id', 'type'].filter((name) => !header.includes(name));
  if (missing.length)
    throw new CliError(
      `${file}: the header row has no ${missing.join(' or ')} column (columns: id, customer, type, timestamp, then properties)`,
      exitCodes.cannotRun,
    );
  const duplicate = header.find((name, i) => header.indexOf(name) !== i);
  if (duplicate !== undefined) throw new CliError(`${file}: column "${duplicate}" appears twice in the header row`, exitCodes.cannotRun);
  if (header.includes('')) throw new CliError(`${file}: the header row has an unnamed column`, exitCodes.cannotRun);
  return header;
}

function parseNdjson(line: string): Record<string, unknown> {
  const value: unknown = JSON.parse(line);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SyntaxError('not a JSON object');
  // The line is serialized again to be sent, which overflows the stack on deep nesting; the API would refuse it anyway.
  if (nestsDeeperThan(value, MAX_JSON_DEPTH + 1))
    throw new SyntaxError(`nests deeper than the ${MAX_JSON_DEPTH} levels event properties may have`);
  return value as Record<string, unknown>;
}

/**
 * Reads the file line by line (memory stays flat however long it is). Blank lines are skipped;
 * the first `skipLines` lines (acknowledged by an earlier run) are read past without parsing,
 * except a CSV header, which is always needed.
 */
export async function* readEvents(file: string, format: BackfillFormat, skipLines: number): AsyncGenerator<SourceItem> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let lineNo = 0;
  // Line breaks count as one byte: close enough for a progress bar, also for CRLF files.
  let endByte = 0;
  let toEvent: ((line: string) => Record<string, unknown>) | undefined = format === 'ndjson' ? parseNdjson : undefined;
  for await (const raw of lines) {
    lineNo += 1;
    const text = lineNo === 1 ? raw.replace(/^\uFEFF/, '') : raw;
    endByte += Buffer.byteLength(text) + 1;
    if (!toEvent) {
      const header = parseHeader(text, file);
      const map = csvMapper(header);
      toEvent = (line) => {
        const fields = splitCsvLine(line);
        if (fields.length !== header.length) throw new CsvLineError(`${fields.length} fields where the header has ${header.length}`);
        return map(fields);
      };
      continue;
    }
    if (lineNo <= skipLines || text.trim() === '') continue;
    let item: SourceItem;
    try {
      item = { line: lineNo, endByte, event: toEvent(text) };
    } catch (err) {
      if (!(err instanceof SyntaxError || err instanceof CsvLineError)) throw err;
      item = {
        line: lineNo,
        endByte,
        malformed: { reason: 'malformed_line', detail: `${format === 'csv' ? 'invalid CSV' : 'invalid JSON'}: ${err.message}`, raw: text },
      };
    }
    yield item;
  }
}
