import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import type { Clock } from '../clock';
import { recordAudit, type AuditActor } from '../db/audit';
import type { Pool } from '../db/pool';
import { withRunLock } from '../db/run-lock';
import type { Queryable } from '../db/transaction';
import {
  archivedIn,
  deletePeriodEvents,
  fetchEvents,
  isArchived,
  openPeriodCursor,
  periodsToArchive,
  recordArchivedPeriod,
  type ArchivedEventRow,
  type PeriodToArchive,
} from './store';

/*
 * Retention: the raw events of billed periods, once old enough, move from usage_events into gzip
 * NDJSON files, one per customer and period, and are deleted. Per period, in one transaction:
 * the events are read through a cursor and written to `<file>.tmp`, which is fsynced, renamed and
 * read back (line count and sha256); only if the count matches are the same rows deleted (the
 * DELETE must remove exactly as many rows as the file holds, or the period changed meanwhile and
 * everything rolls back), the period is recorded in archived_periods and audited; then COMMIT.
 * A crash before COMMIT leaves the events in place and a file the next run overwrites; after
 * COMMIT, the period is recorded and the next run skips it. The manifest is rewritten from
 * archived_periods after each period, so it can be regenerated whatever happened to the last one.
 */

const FETCH = 5_000;
/** Other archive runs are refused while this one holds it (session advisory lock). */
const RUN_LOCK = 'meterflow:events-archive';

export interface ArchiveOptions {
  /** Periods must have ended by then. */
  before: Date;
  directory: string;
  actor: AuditActor;
  /** Told after each period: how many of how many, and events archived so far. */
  progress?: (periodsDone: number, periods: number, events: number) => void;
}

export interface ArchivedFile {
  file: string;
  customer: string;
  customer_id: string;
  invoice_id: string;
  period_start: string;
  period_end: string;
  events: number;
  sha256: string;
}

export interface ArchiveSummary {
  before: string;
  directory: string;
  manifest: string;
  periods_archived: number;
  events_archived: number;
  files: ArchivedFile[];
  /** Periods that changed while being archived (an event arrived for them): left in place for the next run. */
  changed: Array<{ customer: string; period_start: string; file_events: number; deleted: number }>;
}

export interface ArchiveDeps {
  pool: Pool;
  clock: Clock;
}

const compactInstant = (d: Date) => d.toISOString().replace(/[-:]/g, '').replace('.000', '');
const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 60);

/** `<customer external id>_<customer uuid>_<start>_<end>.ndjson.gz`, e.g. `acme_0b6…_20260101T000000Z_20260201T000000Z.ndjson.gz`. */
export const archiveFileName = (p: Pick<PeriodToArchive, 'customerExternalId' | 'customerId' | 'periodStart' | 'periodEnd'>) =>
  `${safe(p.customerExternalId)}_${p.customerId}_${compactInstant(p.periodStart)}_${compactInstant(p.periodEnd)}.ndjson.gz`;

/** One NDJSON line per event; properties are copied as the JSON text PostgreSQL stored. */
export function eventLine(r: ArchivedEventRow): string {
  return (
    `{"customer_id":${JSON.stringify(r.customer_id)},"event_id":${JSON.stringify(r.event_id)},"meter_id":${JSON.stringify(r.meter_id)},` +
    `"event_time":${JSON.stringify(r.event_time)},"received_at":${JSON.stringify(r.received_at)},"value":${JSON.stringify(r.value)},` +
    `"properties":${r.properties},"timestamp_provided":${r.timestamp_provided},"late":${r.late}}\n`
  );
}

async function fsyncPath(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The file's sha256 and how many lines it holds once decompressed. */
export async function inspectArchive(file: string): Promise<{ sha256: string; lines: number }> {
  const hash = createHash('sha256');
  let lines = 0;
  await pipeline(
    createReadStream(file).on('data', (chunk) => hash.update(chunk)),
    createGunzip(),
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines += 1;
        done();
      },
    }),
  );
  return { sha256: hash.digest('hex'), lines };
}

async function writePeriodFile(client: Queryable, period: PeriodToArchive, file: string): Promise<number> {
  const cursor = 'archive_events';
  await openPeriodCursor(client, cursor, period.customerId, period.periodStart, period.periodEnd);
  let written = 0;
  async function* lines() {
    for (;;) {
      const rows = await fetchEvents(client, cursor, FETCH);
      if (rows.length === 0) return;
      written += rows.length;
      yield rows.map(eventLine).join('');
    }
  }
  const tmp = `${file}.tmp`;
  await pipeline(Readable.from(lines()), createGzip(), createWriteStream(tmp));
  await client.query(`close ${cursor}`);
  await fsyncPath(tmp);
  await rename(tmp, file);
  await fsyncPath(path.dirname(file));
  return written;
}

async function writeManifest(db: Queryable, directory: string): Promise<string> {
  const manifest = path.join(directory, 'manifest.json');
  const periods = await archivedIn(db, directory);
  const body = {
    format:
      'gzip NDJSON, one stored usage event per line (usage_events columns, the customer and meter by their uuid; timestamps UTC to the microsecond, value as exact decimal text)',
    periods: periods.map((p) => ({
      file: p.file,
      customer: p.customerExternalId,
      customer_id: p.customerId,
      invoice_id: p.invoiceId,
      period_start: p.periodStart.toISOString(),
      period_end: p.periodEnd.toISOString(),
      events: Number(p.eventCount),
      sha256: p.sha256,
      archived_at: p.archivedAt.toISOString(),
    })),
  };
  await writeFile(`${manifest}.tmp`, `${JSON.stringify(body, null, 2)}\n`);
  await fsyncPath(`${manifest}.tmp`);
  await rename(`${manifest}.tmp`, manifest);
  await fsyncPath(directory);
  return manifest;
}

export async function archiveEvents(deps: ArchiveDeps, opts: ArchiveOptions): Promise<ArchiveSummary> {
  const directory = path.resolve(opts.directory);
  await mkdir(directory, { recursive: true });
  return withRunLock(deps.pool, RUN_LOCK, 'another `events archive` run is in progress', async (client, markBroken) => {
    const periods = await periodsToArchive(client, opts.before);
    const summary: ArchiveSummary = {
      before: opts.before.toISOString(),
      directory,
      manifest: path.join(directory, 'manifest.json'),
      periods_archived: 0,
      events_archived: 0,
      files: [],
      changed: [],
    };
    let done = 0;
    const tick = () => opts.progress?.(++done, periods.length, summary.events_archived);
    for (const period of periods) {
      const name = archiveFileName(period);
      const file = path.join(directory, name);
      await client.query('begin');
      try {
        if (await isArchived(client, period.customerId, period.periodStart)) {
          await client.query('rollback');
          tick();
          continue;
        }
        const written = await writePeriodFile(client, period, file);
        const { sha256, lines } = await inspectArchive(file);
        if (lines !== written) throw new Error(`${file}: ${lines} lines read back, ${written} written`);
        const deleted = await deletePeriodEvents(client, period.customerId, period.periodStart, period.periodEnd);
        if (deleted !== written) {
          await client.query('rollback');
          await rm(file, { force: true });
          summary.changed.push({
            customer: period.customerExternalId,
            period_start: period.periodStart.toISOString(),
            file_events: written,
            deleted,
          });
          tick();
          continue;
        }
        await recordArchivedPeriod(client, {
          customerId: period.customerId,
          periodStart: period.periodStart,
          periodEnd: period.periodEnd,
          invoiceId: period.invoiceId,
          directory,
          file: name,
          eventCount: String(written),
          sha256,
          archivedAt: deps.clock.now(),
        });
        await recordAudit(client, {
          actor: opts.actor,
          action: 'usage_events.archived',
          subjectType: 'invoice',
          subjectId: period.invoiceId,
          details: {
            customer_id: period.customerId,
            period_start: period.periodStart.toISOString(),
            period_end: period.periodEnd.toISOString(),
            invoice_status: period.invoiceStatus,
            directory,
            file: name,
            events: written,
            sha256,
          },
        });
        await client.query('commit');
        summary.periods_archived += 1;
        summary.events_archived += written;
        summary.files.push({
          file: name,
          customer: period.customerExternalId,
          customer_id: period.customerId,
          invoice_id: period.invoiceId,
          period_start: period.periodStart.toISOString(),
          period_end: period.periodEnd.toISOString(),
          events: written,
          sha256,
        });
      } catch (err) {
        await client.query('rollback').catch(markBroken);
        throw err;
      }
      await writeManifest(client, directory);
      tick();
    }
    await writeManifest(client, directory);
    return summary;
  });
}
