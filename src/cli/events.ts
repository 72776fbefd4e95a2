import { SingleBar } from 'cli-progress';
import { Command } from 'commander';
import { z } from 'zod';
import { systemClock } from '../clock';
import { RunBusyError } from '../db/run-lock';
import { archiveEvents, type ArchiveSummary } from '../retention/archive';
import { repackEventIndexes, type RepackSummary } from '../retention/repack-indexes';
import type { Pool } from '../db/pool';
import { CliError, exitCodes, parseInput, withDatabase, type CliContext } from './context';
import { emit, record, wantsJson } from './output';

const DAY_MS = 86_400_000;

const OptionsSchema = z.object({
  out: z.string({ error: 'pass --out DIR' }).min(1),
  before: z.iso
    .datetime({ offset: true })
    .or(z.iso.date())
    .transform((v) => new Date(/^\d{4}-\d{2}-\d{2}$/.test(v) ? `${v}T00:00:00Z` : v))
    .optional(),
  retentionDays: z.coerce.number().int().min(0).max(36_500),
});

function summaryText(s: ArchiveSummary): string {
  const lines = [
    record({
      'periods ended before': s.before,
      'periods archived': s.periods_archived,
      'events archived and deleted': s.events_archived,
      directory: s.directory,
      manifest: s.manifest,
    }),
  ];
  for (const c of s.changed)
    lines.push(
      `skipped ${c.customer} ${c.period_start}: ${c.file_events} events exported but ${c.deleted} would be deleted (events arrived meanwhile); run again`,
    );
  return lines.join('\n');
}

type Progress = (done: number, total: number, payload: Record<string, unknown>) => void;

/**
 * Runs one of the locked maintenance jobs against the database, with a progress bar on stderr
 * when it is a terminal and the output is not JSON (started by the first update); another run in
 * progress is a refusal (exit 1).
 */
function runJob<T>(ctx: CliContext, sub: Command, format: string, job: (pool: Pool, progress: Progress) => Promise<T>): Promise<T> {
  const bar = !wantsJson(sub) && process.stderr.isTTY ? new SingleBar({ format, hideCursor: true, stream: process.stderr }) : undefined;
  let started = false;
  const progress: Progress = (done, total, payload) => {
    if (!started) bar?.start(total, 0, payload);
    started = true;
    bar?.update(done, payload);
  };
  return withDatabase(ctx, async (pool) => {
    try {
      return await job(pool, progress);
    } catch (err) {
      if (err instanceof RunBusyError) throw new CliError(err.message, exitCodes.failed);
      throw err;
    } finally {
      bar?.stop();
    }
  });
}

export function eventsCommand(ctx: CliContext): Command {
  const command = new Command('events').description('raw usage events: retention and storage');
  command
    .command('archive')
    .description(
      'export the raw events of billed periods (invoice not draft) that ended before the horizon to gzip NDJSON files, one per customer and period, with a manifest; then delete them. Idempotent: re-run after a crash',
    )
    .requiredOption('--out <dir>', 'directory for the files and manifest.json (created if missing)')
    .option('--before <date>', 'only periods ended by then (e.g. 2026-01-01); never later than the retention horizon')
    .option('--retention-days <n>', 'the horizon: periods ended at least this many days ago', String(ctx.config.EVENT_RETENTION_DAYS))
    .action(async (raw: Record<string, unknown>, sub: Command) => {
      const opts = parseInput(OptionsSchema, raw, 'options');
      const horizon = new Date(systemClock.now().getTime() - opts.retentionDays * DAY_MS);
      const before = opts.before && opts.before < horizon ? opts.before : horizon;
      const summary = await runJob(
        ctx,
        sub,
        'archive |{bar}| {value}/{total} periods | {events} events | {duration_formatted}',
        (pool, progress) =>
          archiveEvents(
            { pool, clock: systemClock },
            { before, directory: opts.out, actor: 'cli', progress: (done, total, events) => progress(done, total, { events }) },
          ),
      );
      emit(ctx, sub, summary, () => summaryText(summary));
      if (summary.changed.length)
        throw new CliError(
          `${summary.changed.length} period(s) changed while archiving and were left in place: run again`,
          exitCodes.failed,
        );
    });
  command
    .command('repack-indexes')
    .description(
      "rebuild usage_events' indexes one partition at a time (REINDEX CONCURRENTLY: ingest goes on), packing the primary key's half-empty pages; drops what an interrupted run left behind, so it can always be run again",
    )
    .action(async (_raw: Record<string, unknown>, sub: Command) => {
      const summary = await runJob(ctx, sub, 'repack |{bar}| {value}/{total} indexes | {index} | {duration_formatted}', (pool, progress) =>
        repackEventIndexes(pool, (done, total, index) => progress(done, total, { index })),
      );
      emit(ctx, sub, summary, () => repackText(summary));
    });
  return command;
}

const megabytes = (bytes: number) => `${(bytes / 1_048_576).toFixed(1)} MB`;

function repackText(s: RepackSummary): string {
  return record({
    'indexes rebuilt': s.indexes_rebuilt,
    'index size before': megabytes(s.bytes_before),
    'index size after': megabytes(s.bytes_after),
    'left over by an interrupted run, dropped': s.leftovers_dropped.length ? s.leftovers_dropped.join(', ') : 'none',
  });
}
