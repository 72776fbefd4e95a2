import type { Clock } from '../clock';
import { topUpLinkFor } from '../domain/top-up-link';

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
  /**
   * With a spend limit on a charged meter: the usage of this meter at which the period's priced
   * usage reaches it, the other meters staying where they are. Null (or absent) otherwise.
   */
  spendRunway?: string | null;
  asOf: Date;
  /**
   * When the workflow read the real-time counters for `usage`: it counts everything any API
   * process stored before then. Null (or absent) when unknown (see migration 0022).
   */
  countedAt?: Date | null;
}

/** One entitlement row as the database announces it (NOTIFY payload) or lists it (snapshot). */
export interface EntitlementChange {
  customerId: string;
  meter: string;
  blocked: boolean;
  /** Refused for the customer's spend limit (402), independently of `blocked` (the hard limit, 429). Absent: not. */
  spendBlocked?: boolean;
  resetsAt: Date;
  quota?: QuotaState;
}

/**
 * The blocked (customer, meter) pairs of the whole system, in this process's memory, for hard
 * limits and, separately, for spend limits: quota checks and ingestion ask it without a database
 * read; beside them, each published meter's quota state (usage, limit, thresholds, spend runway)
 * for the checks' answers. A block lapses at its reset time even if the unblock has not arrived:
 * the period it was decided for is over, and usage counts from zero again.
 */
export class EntitlementStore {
  /** Hard-limit blocks (429). */
  private blocks: BlockMap;
  /** Spend-limit blocks (402). */
  private spendBlocks: BlockMap;
  /** customer id + meter code → published quota state and the end of its period. */
  private quotas = new Map<string, QuotaState & { resetsAt: Date }>();

  constructor(
    private readonly clock: Clock,
    /** Where a refused customer can raise its limits; part of every refusal. */
    readonly upgradeUrl: string,
    /** Where a customer refused for its spend limit can top up or raise it (a template: see topUpUrlFor); part of every 402. */
    readonly topUpUrl: string,
  ) {
    this.blocks = new BlockMap(clock);
    this.spendBlocks = new BlockMap(clock);
  }

  /** The customer's own top-up link (its external id in the template's `{customer}`). */
  topUpUrlFor(customer: string): string {
    return topUpLinkFor(this.topUpUrl, customer);
  }

  /** The block in force on this customer's meter, if any. */
  blockOf(customerId: string, meter: string): Block | undefined {
    return this.blocks.get(customerId, meter);
  }

  isBlocked(customerId: string, meter: string): boolean {
    return this.blockOf(customerId, meter) !== undefined;
  }

  /** The spend-limit block in force on this customer's meter, if any. */
  spendBlockOf(customerId: string, meter: string): Block | undefined {
    return this.spendBlocks.get(customerId, meter);
  }

  /** How many hard-limit blocks are held (lapsed ones included until next looked up). */
  get size(): number {
    return this.blocks.size;
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
    this.blocks.set(change.customerId, change.meter, change.blocked ? { resetsAt: change.resetsAt } : undefined);
    this.spendBlocks.set(change.customerId, change.meter, change.spendBlocked ? { resetsAt: change.resetsAt } : undefined);
  }

  /** Replaces everything with a full snapshot of the table. */
  replace(rows: Iterable<EntitlementChange>): void {
    this.blocks = new BlockMap(this.clock);
    this.spendBlocks = new BlockMap(this.clock);
    this.quotas = new Map();
    for (const row of rows) this.apply(row);
  }
}

/** Blocks by customer and meter; a block lapses at its reset time, when it is next looked up. */
class BlockMap {
  /** customer id → meter code → block. */
  private readonly byCustomer = new Map<string, Map<string, Block>>();

  constructor(private readonly clock: Clock) {}

  get(customerId: string, meter: string): Block | undefined {
    const meters = this.byCustomer.get(customerId);
    const block = meters?.get(meter);
    if (!block) return undefined;
    if (block.resetsAt.getTime() > this.clock.now().getTime()) return block;
    this.set(customerId, meter, undefined);
    return undefined;
  }

  /** Sets the block, or lifts it (undefined). */
  set(customerId: string, meter: string, block: Block | undefined): void {
    let meters = this.byCustomer.get(customerId);
    if (block) {
      if (!meters) this.byCustomer.set(customerId, (meters = new Map()));
      meters.set(meter, block);
      return;
    }
    meters?.delete(meter);
    if (meters?.size === 0) this.byCustomer.delete(customerId);
  }

  get size(): number {
    let n = 0;
    for (const meters of this.byCustomer.values()) n += meters.size;
    return n;
  }
}

/** Whole seconds until `resetsAt`, at least 1: what `Retry-After` says to a refused client. */
export function secondsUntil(resetsAt: Date, now: Date): number {
  return Math.max(1, Math.ceil((resetsAt.getTime() - now.getTime()) / 1000));
}
