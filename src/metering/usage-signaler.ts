import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { DecimalSum } from '../domain/metering/decimal-sum';
import { Decimal } from '../domain/money';
import { reportDue, type MeterUsageEstimate, type UsageReportKind } from '../domain/usage-urgency';
import {
  DEFAULT_USAGE_REPORT_INTERVAL_MS,
  USAGE_BUCKET_MS,
  usageReported,
  workflowIdFor,
  type UsageReport,
} from '../workflows/billing-period';

/** One newly stored event, as quota tracking needs it. */
export interface AcceptedUsage {
  /** The customer's external id: its billing workflow is named after it. */
  customer: string;
  /** The customer's internal id: published quota state is kept under it. */
  customerId: string;
  meter: string;
  /** 1 for a count meter, the value for a sum meter; other aggregations do not add up. */
  quantity: string;
  eventTime: string;
}

/** A meter's state as the billing workflow last published it (src/entitlements/store.ts `quotaOf`). */
export interface PublishedQuota {
  usage: string;
  nextDecision: string | null;
  asOf: Date;
  /** When the workflow read the counters for `usage`: it counts what any process stored before. Absent when unknown. */
  countedAt?: Date | null;
}

export type QuotaLookup = (customerId: string, meter: string) => PublishedQuota | undefined;

interface SentSincePublish {
  /** The publish (its `asOf`, epoch ms) this amount was reported after. */
  asOf: number;
  amount: Decimal;
}

/** Pending usage stored within one second, kept apart so that a read of the counters after it can retire it. */
interface StoredChunk {
  /** When the chunk's latest usage was stored (epoch ms). */
  storedAt: number;
  /** Per meter and bucket, as `pending`. */
  amounts: Map<string, Decimal>;
}

interface CustomerQueue {
  customerId: string;
  /** Stored and not yet reported, per meter and bucket (`meter \0 bucket start`). */
  pending: Map<string, Decimal>;
  /** The same amounts by the second they were stored in, oldest first. */
  chunks: StoredChunk[];
  /** The same per meter: what the urgency rule adds to the published usage. */
  pendingByMeter: Map<string, Decimal>;
  /** Reported per meter since the workflow's last publish; forgotten when a newer publish arrives. */
  sent: Map<string, SentSincePublish>;
  /** When the slow-report clock started (epoch ms): this customer's previous report from this process, or its first usage since. */
  since: number;
  /** A report sent but not confirmed; retried with the same sequence, so it cannot count twice. */
  inFlight?: { report: UsageReport; kind: UsageReportKind };
  /** The send in progress, if any: at most one per customer keeps its reports in sequence. */
  sending?: Promise<void>;
}

export interface UsageSignalerOptions {
  client: Client;
  logger: Logger;
  /** The published quota state of a customer's meter (by internal customer id), if any. */
  quotaOf: QuotaLookup;
  registry?: Registry;
  /** How long usage far from any decision point waits for its (slow) report; default 300 s. */
  reportIntervalMs?: number;
  /** A report is urgent from `nextDecision × (1 − margin)` on; default 0.1. */
  signalMargin?: number;
  /** How many API processes store usage, this one included (ApiProcessCount); default 1. */
  producers?: () => number;
  /** How often reports are considered; default 1 s. */
  tickMs?: number;
  /**
   * How much later than the interval this process's slow reports come (ms); default a random
   * share of up to 10 % of the interval, drawn once. Processes holding usage of one customer so
   * report one after the other: the first report's read retires what the others stored before it.
   */
  reportStaggerMs?: number;
  /** Epoch ms; tests move it by hand. */
  now?: () => number;
}

export const DEFAULT_USAGE_SIGNAL_MARGIN = 0.1;
const NO_WORKFLOW_BACKOFF_MS = 30_000;

/** Takes `amount` off `key`'s entry, dropping the entry when nothing is left. */
function subtract(amounts: Map<string, Decimal>, key: string, amount: Decimal): void {
  const left = amounts.get(key)!.minus(amount);
  if (left.isZero()) amounts.delete(key);
  else amounts.set(key, left);
}

/**
 * A batch's usage summed per customer, meter and bucket, in the order first seen: the signaler
 * then adds each sum to its queues once, not each event (a batch of 1,000 events of one customer
 * and meter is one Decimal addition per map instead of 1,000), and parses a timestamp once per run
 * of events that share it.
 */
function foldByBucket(
  usage: readonly AcceptedUsage[],
): Iterable<{ usage: AcceptedUsage; bucket: string; quantity: DecimalSum; events: number }> {
  const folded = new Map<string, { usage: AcceptedUsage; bucket: string; quantity: DecimalSum; events: number }>();
  let time: string | undefined;
  let bucket = '';
  for (const u of usage) {
    if (u.eventTime !== time) {
      time = u.eventTime;
      bucket = new Date(Math.floor(Date.parse(time) / USAGE_BUCKET_MS) * USAGE_BUCKET_MS).toISOString();
    }
    const key = `${u.customer}\u0000${u.meter}\u0000${bucket}`;
    let sum = folded.get(key);
    if (!sum) folded.set(key, (sum = { usage: u, bucket, quantity: new DecimalSum(), events: 0 }));
    sum.quantity.add(u.quantity);
    sum.events++;
  }
  return folded.values();
}

/**
 * Feeds the billing workflows without one signal per event, and without one per second either:
 * stored usage is summed per customer, meter and second, and a customer's workflow is signalled
 * at the next tick only when the usage it would estimate for a meter (what it published, plus
 * what this process reported since and has pending, once for every API process: each holds its
 * share) comes within the margin of the meter's next decision point (a threshold notice or a
 * block is due soon). Other usage waits for the slow
 * report, sent once the report interval (and this process's stagger) has passed since this
 * customer's previous report from this process, its first usage since, or the workflow's latest
 * published read of the counters, whichever is latest; pending usage stored before such a read is
 * retired unreported (it was counted). So with several API processes the workflow hears about
 * once per interval, not once per process (see reportDue). Every report carries this process's producer id and
 * an increasing sequence, so the workflow ignores replays and reordering; one report per customer
 * is in flight at a time, and a failed one is retried as it was. A customer without a running
 * workflow (no subscription) is skipped for a while. Quota tracking only: invoices recompute from
 * the events.
 */
export class UsageSignaler {
  private readonly producer = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  private seq = 0;
  private readonly queues = new Map<string, CustomerQueue>();
  private readonly noWorkflowUntil = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private readonly metrics;
  private readonly reportIntervalMs: number;
  private readonly margin: number;
  private readonly now: () => number;

  constructor(private readonly opts: UsageSignalerOptions) {
    const registers = opts.registry ? [opts.registry] : [];
    this.metrics = {
      signals: new Counter({ name: 'usage_signals_total', help: 'Usage reports signalled to billing workflows', registers }),
      reports: new Counter({
        name: 'usage_reports_total',
        help: 'Usage reports delivered to billing workflows, by kind: urgent (near a decision point) or slow (the report interval)',
        labelNames: ['kind'] as const,
        registers,
      }),
      events: new Counter({ name: 'usage_signal_events_total', help: 'Stored events folded into usage reports', registers }),
      retired: new Counter({
        name: 'usage_pending_retired_total',
        help: 'Pending usage amounts (per meter and second stored) not reported: a read of the counters by the workflow counted them first',
        registers,
      }),
    };
    const interval = opts.reportIntervalMs ?? DEFAULT_USAGE_REPORT_INTERVAL_MS;
    this.reportIntervalMs = interval + (opts.reportStaggerMs ?? Math.random() * 0.1 * interval);
    this.margin = opts.signalMargin ?? DEFAULT_USAGE_SIGNAL_MARGIN;
    this.now = opts.now ?? Date.now;
    this.timer = setInterval(() => void this.tick(), opts.tickMs ?? 1000);
    this.timer.unref();
  }

  record(usage: readonly AcceptedUsage[]): void {
    const now = this.now();
    for (const { usage: u, bucket, quantity, events } of foldByBucket(usage)) {
      const skipUntil = this.noWorkflowUntil.get(u.customer);
      if (skipUntil !== undefined) {
        if (skipUntil > now) continue;
        this.noWorkflowUntil.delete(u.customer);
      }
      let queue = this.queues.get(u.customer);
      if (!queue) {
        queue = { customerId: u.customerId, pending: new Map(), chunks: [], pendingByMeter: new Map(), sent: new Map(), since: now };
        this.queues.set(u.customer, queue);
      } else if (queue.pending.size === 0 && !queue.inFlight && now - queue.since >= this.reportIntervalMs) {
        // Idle for a whole interval: this usage starts the clock again rather than being sent at once.
        queue.since = now;
      }
      const key = `${u.meter}\u0000${bucket}`;
      const amount = new Decimal(quantity.toString());
      queue.pending.set(key, (queue.pending.get(key) ?? new Decimal(0)).plus(amount));
      queue.pendingByMeter.set(u.meter, (queue.pendingByMeter.get(u.meter) ?? new Decimal(0)).plus(amount));
      let chunk = queue.chunks.at(-1);
      if (!chunk || Math.floor(chunk.storedAt / 1000) !== Math.floor(now / 1000))
        queue.chunks.push((chunk = { storedAt: now, amounts: new Map() }));
      chunk.storedAt = now;
      chunk.amounts.set(key, (chunk.amounts.get(key) ?? new Decimal(0)).plus(amount));
      this.metrics.events.inc(events);
    }
  }

  /** One tick: sends what is due (retries, urgent reports, slow reports whose interval has passed). */
  tick(): Promise<void> {
    const now = this.now();
    const sends: Array<Promise<void>> = [];
    for (const [customer, queue] of this.queues) {
      if (queue.sending) continue;
      if (queue.inFlight) {
        sends.push(this.send(customer, queue));
        continue;
      }
      const kind = this.due(queue, now);
      if (kind) sends.push(this.send(customer, queue, kind));
      else if (queue.pending.size === 0 && now - queue.since >= this.reportIntervalMs) this.queues.delete(customer);
    }
    return Promise.all(sends).then(() => undefined);
  }

  /** Sends everything owed now, urgent or not (one report in flight per customer). */
  flush(): Promise<void> {
    const now = this.now();
    const sends = [...this.queues.entries()].map(([customer, queue]) => this.send(customer, queue, this.due(queue, now) ?? 'slow'));
    return Promise.all(sends).then(() => undefined);
  }

  /**
   * Stops the timer and delivers what is still owed, urgent or not: a send in progress is awaited
   * and what accumulated meanwhile is sent after it, until nothing is left or `deadlineMs` has
   * passed (Temporal unreachable: quotas then lag; invoices never depend on these signals).
   */
  async stop(deadlineMs = 10_000): Promise<void> {
    clearInterval(this.timer);
    const giveUpAt = Date.now() + deadlineMs;
    while (this.owed() && Date.now() < giveUpAt) {
      await this.flush();
      await Promise.all([...this.queues.values()].map((q) => q.sending));
    }
  }

  private owed(): boolean {
    for (const queue of this.queues.values()) if (queue.pending.size > 0 || queue.inFlight) return true;
    return false;
  }

  /** Whether the customer's pending usage is reported now: urgent, slow, or not yet. */
  private due(queue: CustomerQueue, now: number): UsageReportKind | null {
    const quotas = new Map([...queue.pendingByMeter.keys()].map((meter) => [meter, this.opts.quotaOf(queue.customerId, meter)]));
    this.retireRead(queue, quotas);
    const producers = this.opts.producers?.() ?? 1;
    const meters: MeterUsageEstimate[] = [];
    for (const [meter, pending] of queue.pendingByMeter) {
      const quota = quotas.get(meter);
      meters.push({
        pending,
        producers,
        sentSincePublish: quota ? this.sentSince(queue, meter, quota) : '0',
        ...(quota
          ? {
              published: {
                usage: quota.usage,
                nextDecision: quota.nextDecision,
                ...(quota.countedAt ? { countedAtMs: quota.countedAt.getTime() } : {}),
              },
            }
          : {}),
      });
    }
    return reportDue({ meters, margin: this.margin, nowMs: now, sinceMs: queue.since, intervalMs: this.reportIntervalMs });
  }

  /**
   * Forgets pending usage the workflow has already counted: a read of the counters published for
   * its meter (`countedAt`) after the usage was stored saw it, whichever process's report caused
   * the read. Without this, usage another process's report got read would wait here and inflate
   * the urgency estimate, which already counts it in the published usage. `quotas`: the
   * published state of each meter with pending usage.
   */
  private retireRead(queue: CustomerQueue, quotas: ReadonlyMap<string, PublishedQuota | undefined>): void {
    const readAt = new Map<string, number>();
    for (const [meter, quota] of quotas) readAt.set(meter, quota?.countedAt?.getTime() ?? -Infinity);
    const newest = Math.max(...readAt.values());
    if (queue.chunks.length === 0 || newest <= queue.chunks[0]!.storedAt) return;
    for (const chunk of queue.chunks) {
      for (const [key, amount] of chunk.amounts) {
        const meter = key.slice(0, key.indexOf('\u0000'));
        if (readAt.get(meter)! <= chunk.storedAt) continue;
        chunk.amounts.delete(key);
        this.metrics.retired.inc();
        subtract(queue.pending, key, amount);
        subtract(queue.pendingByMeter, meter, amount);
      }
    }
    queue.chunks = queue.chunks.filter((chunk) => chunk.amounts.size > 0);
  }

  /** What was reported for the meter since `quota` was published: nothing once a newer publish arrived. */
  private sentSince(queue: CustomerQueue, meter: string, quota: PublishedQuota): Decimal {
    const sent = queue.sent.get(meter);
    if (!sent) return new Decimal(0);
    if (quota.asOf.getTime() > sent.asOf) {
      queue.sent.delete(meter);
      return new Decimal(0);
    }
    return sent.amount;
  }

  private send(customer: string, queue: CustomerQueue, kind: UsageReportKind = 'slow'): Promise<void> {
    if (queue.sending) return queue.sending;
    if (!queue.inFlight) {
      if (queue.pending.size === 0) return Promise.resolve();
      const report: UsageReport = {
        producer: this.producer,
        seq: ++this.seq,
        deltas: [...queue.pending].map(([key, quantity]) => {
          const [meter, at] = key.split('\u0000') as [string, string];
          return { meter, at, quantity: quantity.toFixed() };
        }),
      };
      for (const [meter, amount] of queue.pendingByMeter) {
        const quota = this.opts.quotaOf(queue.customerId, meter);
        if (!quota) continue;
        const before = this.sentSince(queue, meter, quota);
        queue.sent.set(meter, { asOf: quota.asOf.getTime(), amount: before.plus(amount) });
      }
      queue.inFlight = { report, kind };
      queue.pending = new Map();
      queue.chunks = [];
      queue.pendingByMeter = new Map();
      queue.since = this.now();
    }
    const inFlight = queue.inFlight;
    queue.sending = this.deliver(customer, queue, inFlight).finally(() => {
      queue.sending = undefined;
    });
    return queue.sending;
  }

  private async deliver(customer: string, queue: CustomerQueue, inFlight: NonNullable<CustomerQueue['inFlight']>): Promise<void> {
    try {
      await this.opts.client.workflow.getHandle(workflowIdFor(customer)).signal(usageReported, inFlight.report);
      this.metrics.signals.inc();
      this.metrics.reports.inc({ kind: inFlight.kind });
      queue.inFlight = undefined;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        this.noWorkflowUntil.set(customer, this.now() + NO_WORKFLOW_BACKOFF_MS);
        this.queues.delete(customer);
      } else {
        this.opts.logger.warn({ err, customer }, 'usage report not delivered; retrying with the same sequence');
      }
    }
  }
}
