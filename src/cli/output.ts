import Table from 'cli-table3';
import type { Command } from 'commander';
import type { CliContext } from './context';

type Cell = string | number | boolean | null | undefined;

/** Whether the global `--json` was given: the result goes to stdout as one JSON document, nothing else. */
export const wantsJson = (command: Command): boolean => Boolean(command.optsWithGlobals<{ json?: boolean }>().json);

/** Prints a command's result: JSON for scripts, or the human rendering. */
export function emit(ctx: CliContext, command: Command, data: unknown, human: () => string): void {
  ctx.stdout(wantsJson(command) ? JSON.stringify(data, null, 2) : human());
}

// No colours (tables are read in terminals and in pipes alike), no rules between rows.
const plain = { head: [], border: [], compact: true };
const show = (value: Cell) => (value === null || value === undefined ? '' : String(value));

/** Rows under a header. */
export function table(head: string[], rows: Cell[][]): string {
  const t = new Table({ head, style: plain });
  t.push(...rows.map((row) => row.map(show)));
  return t.toString();
}

/** One record, a field per row. */
export function record(fields: Record<string, Cell>): string {
  const t = new Table({ style: plain });
  t.push(...Object.entries(fields).map(([name, value]) => ({ [name]: show(value) })));
  return t.toString();
}

/** The human form of a page: its table, and how to ask for the next one. */
export function pageText(rendered: string, count: number, nextCursor: string | null): string {
  if (count === 0) return '(none)';
  return nextCursor ? `${rendered}\nmore: repeat with --after ${nextCursor}` : rendered;
}
