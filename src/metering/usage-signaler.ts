import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { Decimal } from '../domain/money';
import { USAGE_BUCKET_MS, usageReported, workflowIdFor, type UsageReport } from '../workflows/billing-period';

/** One newly stored event, as quota tracking needs it. */
export interface AcceptedUsage {
  customer: string;
  meter: string;
  /** 1 for a count meter, the value for a sum meter; other aggregations do not add up. */
  quantity: string;
  eventTime: string;
}

interface CustomerQueue {
  pending: Map<string, Decimal>;
  /** A report sent but not confirmed; retried with the same sequence, so it cannot count twice. */
  inFlight?: UsageReport;
  /** The send in progress, if any: at most one per customer keeps its reports in sequence. */
  sending?: Promise<void>;
}

const NO_WORKFLOW_BACKOFF_MS = 30_000;

/**
 * Feeds the billing workflows without one signal per event: stored usage is summed per
 * customer, meter and second, and each customer's workflow gets at most one signal per
 * interval. Every report carries this process's producer id and an increasing sequence, so the
 * workflow ignores replays and reordering. A customer without a running workflow (no
 * subscription) is skipped for a while. Quota tracking only: invoices recompute from the events.
 */
export class UsageSignaler {
  private readonly producer = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  private seq = 0;
  private readonly queues = new Map<string, CustomerQueue>();
  private readonly noWorkflowUntil = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private readonly metrics;

  constructor(private readonly opts: { client: Client; logger: Logger; intervalMs?: number; registry?: Registry }) {
    const registers = opts.registry ? [opts.registry] : [];
    this.metrics = {
      signals: new Counter({ name: 'usage_signals_total', help: 'Usage reports signalled to billing workflows', registers }),
      events: new Counter({ name: 'usage_signal_events_total', help: 'Stored events folded into usage reports', registers }),
    };
    this.timer = setInterval(() => void this.flush(), opts.intervalMs ?? 1000);
    this.timer.unref();
  }

  record(usage: readonly AcceptedUsage[]): void {
    const now = Date.now();
    for (const u of usage) {
      if ((this.noWorkflowUntil.get(u.customer) ?? 0) > now) continue;
      let queue = this.queues.get(u.customer);
      if (!queue) this.queues.set(u.customer, (queue = { pending: new Map() }));
      const bucket = new Date(Math.floor(Date.parse(u.eventTime) / USAGE_BUCKET_MS) * USAGE_BUCKET_MS).toISOString();
      const key = `${u.meter}\u0000${bucket}`;
      queue.pending.set(key, (queue.pending.get(key) ?? new Decimal(0)).plus(u.quantity));
      this.metrics.events.inc();
    }
  }

  /** Sends what has accumulated; one report in flight per customer keeps each producer's sequence in order. */
  flush(): Promise<void> {
    return Promise.all([...this.queues.entries()].map(([customer, queue]) => this.send(customer, queue))).then(() => undefined);
  }

  /**
   * Stops the timer and delivers what is still owed: a send in progress is awaited and what
   * accumulated meanwhile is sent after it, until nothing is left or `deadlineMs` has passed
   * (Temporal unreachable: quotas then lag; invoices never depend on these signals).
   */
  async stop(deadlineMs = 10_000): Promise<void> {
    clearInterval(this.timer);
    const giveUpAt = Date.now() + deadlineMs;
    while (this.queues.size > 0 && Date.now() < giveUpAt) {
      await this.flush();
      await Promise.all([...this.queues.values()].map((q) => q.sending));
    }
  }

  private async send(customer: string, queue: CustomerQueue): Promise<void> {
    if (queue.sending) return queue.sending;
    if (!queue.inFlight) {
      if (queue.pending.size === 0) {
        this.queues.delete(customer);
        return;
      }
      queue.inFlight = {
        producer: this.producer,
        seq: ++this.seq,
        deltas: [...queue.pending].map(([key, quantity]) => {
          const [meter, at] = key.split('\u0000') as [string, string];
          return { meter, at, quantity: quantity.toFixed() };
        }),
      };
      queue.pending = new Map();
    }
    const report = queue.inFlight;
    queue.sending = this.deliver(customer, queue, report).finally(() => {
      queue.sending = undefined;
    });
    return queue.sending;
  }

  private async deliver(customer: string, queue: CustomerQueue, report: UsageReport): Promise<void> {
    try {
      await this.opts.client.workflow.getHandle(workflowIdFor(customer)).signal(usageReported, report);
      this.metrics.signals.inc();
      queue.inFlight = undefined;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        this.noWorkflowUntil.set(customer, Date.now() + NO_WORKFLOW_BACKOFF_MS);
        this.queues.delete(customer);
      } else {
        this.opts.logger.warn({ err, customer }, 'usage report not delivered; retrying with the same sequence');
      }
    }
  }
}
