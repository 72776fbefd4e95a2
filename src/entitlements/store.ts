import type { Clock } from '../clock';

/** A meter a customer may not use until `resetsAt`, as the billing workflow decided. */
export interface Block {
  /** The end of the period the block belongs to: the block lapses then. */
  resetsAt: Date;
}

/** A limited meter's state in the current period, as the billing workflow last published it. */
export interface QuotaState {
  usage: string;
  hardLimit: string | null;
  /** The quota policy's status: ok, over_limit_in_grace, overage, blocked. */
  state: string;
  notified: string[];
  /**
   * The usage at which the workflow next decides something for this meter (a soft threshold
   * or the hard limit): producers report at once when usage nears it. Null when nothing is left
   * to decide, or when the workflow that published it predates decision points.
   */
  nextDecision: string | null;
  asOf: Date;
}

/** One entitlement row as the database announces it (NOTIFY payload) or lists it (snapshot). */
export interface EntitlementChange {
  customerId: string;
  meter: string;
  blocked: boolean;
  resetsAt: Date;
  quota?: QuotaState;
}

/**
 * The blocked (customer, meter) pairs of the whole system, in this process's memory: quota
 * checks and ingestion ask it without a database read; beside them, each limited meter's
 * published quota state (usage, limit, thresholds) for the checks' answers. A block lapses at its reset time even if the unblock has not arrived: the period it was
 * decided for is over, and usage counts from zero again.
 */
export class EntitlementStore {
  /** customer id → meter code → block. */
  private blocks = new Map<string, Map<string, Block>>();
  /** customer id + meter code → published quota state and the end of its period. */
  private quotas = new Map<string, QuotaState & { resetsAt: Date }>();

  constructor(
    private readonly clock: Clock,
    /** Where a refused customer can raise its limits; part of every refusal. */
    readonly upgradeUrl: string,
  ) {}

  /** The block in force on this customer's meter, if any. */
  blockOf(customerId: string, meter: string): Block | undefined {
    const meters = this.blocks.get(customerId);
    const block = meters?.get(meter);
    if (!block) return undefined;
    if (block.resetsAt.getTime() > this.clock.now().getTime()) return block;
    meters!.delete(meter);
    if (meters!.size === 0) this.blocks.delete(customerId);
    return undefined;
  }

  isBlocked(customerId: string, meter: string): boolean {
    return this.blockOf(customerId, meter) !== undefined;
  }

  /** How many blocks are held (lapsed ones included until next looked up). */
  get size(): number {
    let n = 0;
    for (const meters of this.blocks.values()) n += meters.size;
    return n;
  }

  /** The meter's quota state in the current period, if the workflow published one that has not lapsed. */
  quotaOf(customerId: string, meter: string): (QuotaState & { resetsAt: Date }) | undefined {
    const key = `${customerId}\u0000${meter}`;
    const quota = this.quotas.get(key);
    if (!quota || quota.resetsAt.getTime() > this.clock.now().getTime()) return quota;
    this.quotas.delete(key);
    return undefined;
  }

  apply(change: EntitlementChange): void {
    if (change.quota) this.quotas.set(`${change.customerId}\u0000${change.meter}`, { ...change.quota, resetsAt: change.resetsAt });
    if (change.blocked) {
      let meters = this.blocks.get(change.customerId);
      if (!meters) this.blocks.set(change.customerId, (meters = new Map()));
      meters.set(change.meter, { resetsAt: change.resetsAt });
      return;
    }
    const meters = this.blocks.get(change.customerId);
    meters?.delete(change.meter);
    if (meters?.size === 0) this.blocks.delete(change.customerId);
  }

  /** Replaces everything with a full snapshot of the table. */
  replace(rows: Iterable<EntitlementChange>): void {
    this.blocks = new Map();
    this.quotas = new Map();
    for (const row of rows) this.apply(row);
  }
}

/** Whole seconds until `resetsAt`, at least 1: what `Retry-After` says to a refused client. */
export function secondsUntil(resetsAt: Date, now: Date): number {
  return Math.max(1, Math.ceil((resetsAt.getTime() - now.getTime()) / 1000));
}
