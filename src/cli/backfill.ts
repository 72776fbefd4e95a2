import { once } from 'node:events';
import { createWriteStream, existsSync, readFileSync, renameSync, statSync, writeFileSync, type WriteStream } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { SingleBar } from 'cli-progress';
import { Command, Option } from 'commander';
import { z } from 'zod';
import { MAX_BATCH_EVENTS, type EventOutcome } from '../domain/metering/event-input';
import { backfillFormats, formatOf, readEvents, type BackfillFormat } from './backfill-source';
import { CliError, exitCodes, parseInput, type CliContext } from './context';
import { emit, record, wantsJson } from './output';

const OptionsSchema = z.object({
  apiUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).transform((u) => u.replace(/\/+$/, '')),
  key: z.string({ error: 'pass --key or set METERFLOW_API_KEY (a key with events:write)' }).min(1),
  batchSize: z.coerce.number().int().min(1).max(MAX_BATCH_EVENTS),
  concurrency: z.coerce.number().int().min(1).max(16),
});

/** The API's body limit is 5 MB: a batch of large events is sent before it gets near it. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
const MAX_ATTEMPTS = 10;
const MAX_WAIT_MS = 60_000;
const REQUEST_TIMEOUT_MS = 120_000;
/** Answers worth waiting for: the API is busy (rate limit, full ingest queue) or briefly down. */
const RETRYABLE = new Set([429, 500, 502, 503, 504]);

interface Batch {
  seq: number;
  /** The last line this batch covers: when it and every earlier batch are answered, the checkpoint moves here. */
  lastLine: number;
  /** Where that line ends in the file, for progress. */
  endByte: number;
  lines: number[];
  events: Record<string, unknown>[];
  /** Each event's JSON, serialized once to measure the batch and build its body. */
  bodies: string[];
  bytes: number;
  malformed: Array<{ line: number; detail: string; raw: string }>;
}

type Counts = { accepted: number; duplicate: number; conflict: number; rejected: number; failed: number };

/** What the API said about one batch: per-event outcomes, or why none came. */
type BatchAnswer = { outcomes: EventOutcome[] } | { failed: string };

/** Whole seconds (or an HTTP date) from Retry-After, in ms, capped. */
function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = /^\d+$/.test(header) ? Number(header) : (Date.parse(header) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.min(Math.max(seconds, 0) * 1000, MAX_WAIT_MS) : undefined;
}

/** Exponential backoff with jitter, so several stalled batches do not retry in step. */
const backoffMs = (attempt: number) => Math.min(500 * 2 ** (attempt - 1), 30_000) * (0.5 + Math.random() / 2);

const describeError = (err: unknown) => {
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err instanceof Error ? err.message : String(err)}${cause}`;
};

/** POST /v1/events, the path every producer uses. */
class IngestClient {
  constructor(
    private readonly apiUrl: string,
    private readonly key: string,
  ) {}

  private headers(): Record<string, string> {
    return { authorization: `Bearer ${this.key}`, 'content-type': 'application/json' };
  }

  /** Fails with what to start or fix before anything is read: the API answers and the key may write events. */
  async checkAccess(): Promise<void> {
    let res: Response;
    try {
      res = await fetch(`${this.apiUrl}/v1/keys/current`, { headers: this.headers(), signal: AbortSignal.timeout(10_000) });
    } catch (err) {
      throw new CliError(
        `cannot reach the API at ${this.apiUrl} (start it with \`npm start\`, or pass --api-url): ${describeError(err)}`,
        exitCodes.cannotRun,
      );
    }
    const body = (await res.json().catch(() => ({}))) as { scopes?: string[]; detail?: string };
    if (res.status === 401)
      throw new CliError(`the API refused the key (${body.detail ?? 'invalid'}): pass --key or set METERFLOW_API_KEY`, exitCodes.cannotRun);
    if (!res.ok)
      throw new CliError(`${this.apiUrl}/v1/keys/current answered ${res.status}: is --api-url a meterflow API?`, exitCodes.cannotRun);
    if (!body.scopes?.includes('events:write')) throw new CliError('the key lacks the events:write scope', exitCodes.cannotRun);
  }

  /** Sends one batch, waiting out busy answers; 401 and 403 stop the whole run, since every batch would get them. */
  async send(body: string): Promise<BatchAnswer> {
    for (let attempt = 1; ; attempt += 1) {
      let res: Response;
      try {
        res = await fetch(`${this.apiUrl}/v1/events`, {
          method: 'POST',
          headers: this.headers(),
          body,
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
      } catch (err) {
        if (attempt >= MAX_ATTEMPTS) return { failed: `no answer from the API after ${attempt} attempts: ${describeError(err)}` };
        await sleep(backoffMs(attempt));
        continue;
      }
      const answer = (await res.json().catch(() => ({}))) as { results?: EventOutcome[]; detail?: string };
      // 200, and also a batch of which nothing was stored (4xx listing each event's outcome).
      if (Array.isArray(answer.results)) return { outcomes: answer.results };
      if (res.status === 401 || res.status === 403)
        throw new CliError(`the API refused the batch (${res.status}): ${answer.detail ?? res.statusText}`, exitCodes.cannotRun);
      if (RETRYABLE.has(res.status) && attempt < MAX_ATTEMPTS) {
        await sleep(retryAfterMs(res.headers.get('retry-after')) ?? backoffMs(attempt));
        continue;
      }
      return { failed: `HTTP ${res.status}${attempt > 1 ? ` after ${attempt} attempts` : ''}: ${answer.detail ?? res.statusText}` };
    }
  }
}

/** `<input>.checkpoint`: how many lines of the input are answered, replaced atomically so a kill never leaves half a number. */
class Checkpoint {
  private readonly done = new Map<number, { lastLine: number; answered: boolean }>();
  private next = 0;
  private stalled = false;

  constructor(
    readonly file: string,
    public lines: number,
  ) {}

  static read(file: string): number {
    if (!existsSync(file)) return 0;
    const text = readFileSync(file, 'utf8').trim();
    if (!/^\d+$/.test(text))
      throw new CliError(`${file} does not hold a line count; delete it or run without --resume`, exitCodes.cannotRun);
    return Number(text);
  }

  /** Batches finish in any order; the checkpoint moves over the answered prefix only, and never past a failed batch. */
  complete(batch: Batch, answered: boolean): void {
    this.done.set(batch.seq, { lastLine: batch.lastLine, answered });
    let moved = false;
    while (!this.stalled && this.done.has(this.next)) {
      const entry = this.done.get(this.next)!;
      this.done.delete(this.next);
      if (!entry.answered) {
        this.stalled = true;
        break;
      }
      this.lines = Math.max(this.lines, entry.lastLine);
      this.next += 1;
      moved = true;
    }
    if (moved) {
      writeFileSync(`${this.file}.tmp`, `${this.lines}\n`);
      renameSync(`${this.file}.tmp`, this.file);
    }
  }
}

/** Rejected, conflicting and unsent events with their reasons, one JSON object per line. */
class RejectsFile {
  private readonly stream: WriteStream;

  constructor(
    readonly file: string,
    append: boolean,
  ) {
    this.stream = createWriteStream(file, { flags: append ? 'a' : 'w' });
  }

  async write(entries: object[]): Promise<void> {
    if (entries.length === 0) return;
    if (!this.stream.write(entries.map((e) => `${JSON.stringify(e)}\n`).join(''))) await once(this.stream, 'drain');
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => this.stream.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}

export interface BackfillOptions {
  file: string;
  format: BackfillFormat;
  apiUrl: string;
  key: string;
  rejectsFile: string;
  resume: boolean;
  batchSize: number;
  concurrency: number;
  progress: boolean;
}

export interface BackfillSummary {
  file: string;
  format: BackfillFormat;
  /** Lines an earlier run had answered, skipped by --resume. */
  skipped_lines: number;
  accepted: number;
  duplicate: number;
  conflict: number;
  /** Refused by the API, or lines that are not events. */
  rejected: number;
  /** In batches the API never answered (after retries): sent again by --resume. */
  failed: number;
  elapsed_ms: number;
  events_per_second: number;
  rejects_file: string;
  checkpoint: { file: string; lines: number };
}

export async function runBackfill(opts: BackfillOptions): Promise<BackfillSummary> {
  const client = new IngestClient(opts.apiUrl, opts.key);
  await client.checkAccess();
  const checkpointFile = `${opts.file}.checkpoint`;
  const skipLines = opts.resume ? Checkpoint.read(checkpointFile) : 0;
  const checkpoint = new Checkpoint(checkpointFile, skipLines);
  const rejects = new RejectsFile(opts.rejectsFile, opts.resume);
  let answeredBytes = 0;
  const counts: Counts = { accepted: 0, duplicate: 0, conflict: 0, rejected: 0, failed: 0 };
  const started = performance.now();
  const handled = () => counts.accepted + counts.duplicate + counts.conflict + counts.rejected + counts.failed;
  const rate = () => Math.round(handled() / Math.max((performance.now() - started) / 1000, 0.001));

  const bar = opts.progress
    ? new SingleBar({
        format: 'backfill |{bar}| {percentage}% | {events} events | {rate} events/s | {duration_formatted}',
        hideCursor: true,
        stream: process.stderr,
      })
    : undefined;
  bar?.start(Math.max(statSync(opts.file).size, 1), 0, { events: 0, rate: 0 });

  let fatal: unknown;
  const handle = async (batch: Batch): Promise<void> => {
    const entries: object[] = batch.malformed.map((m) => ({
      line: m.line,
      status: 'rejected',
      reason: 'malformed_line',
      detail: m.detail,
      raw: m.raw,
    }));
    counts.rejected += batch.malformed.length;
    let answered = true;
    if (batch.events.length) {
      const answer = await client.send(`[${batch.bodies.join(',')}]`);
      if ('failed' in answer) {
        answered = false;
        counts.failed += batch.events.length;
        entries.push(
          ...batch.events.map((event, i) => ({
            line: batch.lines[i],
            status: 'failed',
            reason: 'batch_failed',
            detail: answer.failed,
            event,
          })),
        );
      } else {
        for (const outcome of answer.outcomes) {
          counts[outcome.status] += 1;
          if (outcome.status === 'accepted' || outcome.status === 'duplicate') continue;
          const { index, status, reason, detail } = outcome;
          entries.push({ line: batch.lines[index], status, reason, detail, event: batch.events[index] });
        }
      }
    }
    await rejects.write(entries);
    checkpoint.complete(batch, answered);
    answeredBytes = Math.max(answeredBytes, batch.endByte);
    bar?.update(answeredBytes, { events: handled(), rate: rate() });
  };

  const inFlight = new Set<Promise<void>>();
  const dispatch = async (batch: Batch) => {
    while (inFlight.size >= opts.concurrency) await Promise.race(inFlight);
    const running: Promise<void> = handle(batch)
      .catch((err: unknown) => {
        fatal ??= err;
      })
      .finally(() => inFlight.delete(running));
    inFlight.add(running);
  };

  let seq = 0;
  const newBatch = (): Batch => ({ seq: seq++, lastLine: 0, endByte: 0, lines: [], events: [], bodies: [], bytes: 0, malformed: [] });
  let batch = newBatch();
  try {
    for await (const item of readEvents(opts.file, opts.format, skipLines)) {
      if (fatal) break;
      batch.lastLine = item.line;
      batch.endByte = item.endByte;
      if ('malformed' in item) {
        batch.malformed.push({ line: item.line, detail: item.malformed.detail, raw: item.malformed.raw });
      } else {
        const body = JSON.stringify(item.event);
        batch.lines.push(item.line);
        batch.events.push(item.event);
        batch.bodies.push(body);
        batch.bytes += Buffer.byteLength(body) + 1;
      }
      // Malformed lines count too, so a file of nothing but bad lines is still read in bounded steps.
      if (batch.events.length + batch.malformed.length >= opts.batchSize || batch.bytes >= MAX_BATCH_BYTES) {
        await dispatch(batch);
        batch = newBatch();
      }
    }
    if (!fatal && batch.lastLine > 0) await dispatch(batch);
  } finally {
    await Promise.all(inFlight);
    bar?.stop();
    await rejects.close();
  }
  if (fatal) throw fatal;

  const elapsed = performance.now() - started;
  return {
    file: opts.file,
    format: opts.format,
    skipped_lines: skipLines,
    ...counts,
    elapsed_ms: Math.round(elapsed),
    events_per_second: rate(),
    rejects_file: opts.rejectsFile,
    checkpoint: { file: checkpoint.file, lines: checkpoint.lines },
  };
}

function summaryText(s: BackfillSummary): string {
  const lines = [
    record({
      accepted: s.accepted,
      duplicate: s.duplicate,
      conflict: s.conflict,
      rejected: s.rejected,
      failed: s.failed,
      ...(s.skipped_lines ? { 'skipped (resume)': `${s.skipped_lines} lines` } : {}),
      elapsed: `${(s.elapsed_ms / 1000).toFixed(1)} s`,
      throughput: `${s.events_per_second} events/s`,
    }),
    `checkpoint: ${s.checkpoint.lines} lines answered (${s.checkpoint.file}; --resume skips them)`,
  ];
  if (s.conflict + s.rejected + s.failed) lines.push(`rejected, conflicting and failed events, with reasons: ${s.rejects_file}`);
  return lines.join('\n');
}

export function backfillCommand(ctx: CliContext): Command {
  return new Command('backfill')
    .description(
      'import usage events from an NDJSON or CSV file through the API (POST /v1/events); exit 0 all stored, 1 some rejected or failed, 2 could not run',
    )
    .argument('<file>', 'NDJSON (.ndjson, .jsonl: one event per line) or CSV (.csv: header id,customer,type,timestamp,<properties>…)')
    .addOption(new Option('--format <format>', 'override the format the extension names').choices(backfillFormats))
    .option('--api-url <url>', 'the running API', 'http://127.0.0.1:3000')
    .addOption(new Option('--key <secret>', 'API key with events:write').env('METERFLOW_API_KEY'))
    .option('--rejects <file>', 'where rejected and conflicting events go, with reasons (default <file>.rejects.ndjson)')
    .option('--resume', 'skip the lines <file>.checkpoint records as answered by an earlier run')
    .option('--batch-size <n>', `events per request (at most ${MAX_BATCH_EVENTS})`, String(MAX_BATCH_EVENTS))
    .option('--concurrency <n>', 'requests in flight', '4')
    .action(async (file: string, raw: Record<string, unknown>, command: Command) => {
      const opts = parseInput(OptionsSchema, raw, 'options');
      const format = (raw.format as BackfillFormat | undefined) ?? formatOf(file);
      if (!format)
        throw new CliError(
          `cannot tell the format of ${file} from its extension: use .ndjson, .jsonl or .csv, or pass --format`,
          exitCodes.cannotRun,
        );
      if (!existsSync(file) || !statSync(file).isFile()) throw new CliError(`no file ${file}`, exitCodes.cannotRun);
      const json = wantsJson(command);
      const summary = await runBackfill({
        file,
        format,
        ...opts,
        rejectsFile: (raw.rejects as string | undefined) ?? `${file}.rejects.ndjson`,
        resume: Boolean(raw.resume),
        progress: !json && Boolean(process.stdout.isTTY && process.stderr.isTTY),
      });
      emit(ctx, command, summary, () => summaryText(summary));
      const failures = summary.conflict + summary.rejected + summary.failed;
      if (failures)
        throw new CliError(`${failures} event(s) rejected, in conflict or not sent: see ${summary.rejects_file}`, exitCodes.failed);
    });
}
