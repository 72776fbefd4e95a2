import { recordAudit, type AuditActor } from '../db/audit';
import type { Pool } from '../db/pool';
import { inTransaction } from '../db/transaction';

const FOREIGN_KEY_VIOLATION = '23503';

/** False when the row names no existing customer or meter; other failures propagate. */
async function knownCustomerAndMeter(write: Promise<unknown>): Promise<boolean> {
  try {
    await write;
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code === FOREIGN_KEY_VIOLATION) return false;
    throw err;
  }
}

export interface BlockDecision {
  /** Internal customer id. */
  customerId: string;
  /** Meter code. */
  meter: string;
  blocked: boolean;
  /** The end of the period the block belongs to. */
  resetsAt: Date;
  now: Date;
  actor: AuditActor;
}

/**
 * Records a block or its lifting in the entitlements table, whose trigger NOTIFYs every API
 * process at commit. Only a real change is written, with its audit entry in the same
 * transaction: the same decision twice changes nothing. False when the customer or meter is unknown.
 */
export function saveBlockDecision(pool: Pool, decision: BlockDecision): Promise<boolean> {
  const { customerId, meter, blocked, resetsAt, now, actor } = decision;
  return knownCustomerAndMeter(
    inTransaction(pool, async (client) => {
      const changed = blocked
        ? // A block for another period than the one on record is a change too.
          await client.query(
            `insert into entitlements as e (customer_id, meter, blocked, reason, resets_at, updated_at)
             values ($1, $2, true, 'hard_limit', $3, $4)
             on conflict (customer_id, meter) do update
               set blocked = true, reason = 'hard_limit', resets_at = excluded.resets_at, updated_at = excluded.updated_at
               where not e.blocked or e.resets_at <> excluded.resets_at`,
            [customerId, meter, resetsAt, now],
          )
        : // Nothing blocked, nothing to lift: no row is created just to say so.
          await client.query(
            `update entitlements set blocked = false, reason = null, updated_at = $3
             where customer_id = $1 and meter = $2 and blocked`,
            [customerId, meter, now],
          );
      if (changed.rowCount) {
        await recordAudit(client, {
          actor,
          action: blocked ? 'entitlement.blocked' : 'entitlement.unblocked',
          subjectType: 'entitlement',
          subjectId: `${customerId}/${meter}`,
          details: { customer_id: customerId, meter, ...(blocked ? { reason: 'hard_limit', resets_at: resetsAt.toISOString() } : {}) },
        });
      }
    }),
  );
}

export interface PublishedQuota {
  /** Internal customer id. */
  customerId: string;
  /** Meter code. */
  meter: string;
  usage: string;
  hardLimit: string | null;
  /** The quota policy's state: ok, over_limit_in_grace, overage, blocked. */
  state: string;
  notified: string[];
  /** The usage at which the workflow next decides something for this meter; null when nothing is left. */
  nextDecision: string | null;
  /** The usage at which the period's priced usage reaches the spend limit; null (or absent) without one. */
  spendRunway?: string | null;
  periodEnd: Date;
  /** When the workflow evaluated it. */
  asOf: Date;
  /** When the counters were read for `usage`; null when unknown (see QuotaState.countedAt). */
  countedAt?: Date | null;
}

/**
 * Publishes a limited meter's state for quota checks to answer from memory (the row's trigger
 * NOTIFYs every API process). A publish overtaken by a later one changes nothing; a block keeps
 * its own reset time. False when the customer or meter is unknown.
 */
export function saveQuotaState(pool: Pool, quota: PublishedQuota): Promise<boolean> {
  return knownCustomerAndMeter(
    pool.query(
      `insert into entitlements as e
         (customer_id, meter, blocked, resets_at, updated_at, usage, hard_limit, limit_state, notified, usage_as_of, next_decision, spend_runway, usage_counted_at)
       values ($1, $2, false, $3, $8, $4, $5, $6, $7, $8, $9, $10, $11)
       on conflict (customer_id, meter) do update
         set usage = excluded.usage, hard_limit = excluded.hard_limit, limit_state = excluded.limit_state, notified = excluded.notified,
             usage_as_of = excluded.usage_as_of, next_decision = excluded.next_decision, spend_runway = excluded.spend_runway,
             usage_counted_at = excluded.usage_counted_at,
             updated_at = excluded.updated_at,
             resets_at = case when e.blocked or e.spend_blocked then e.resets_at else excluded.resets_at end
         where e.usage_as_of is null or e.usage_as_of <= excluded.usage_as_of`,
      [
        quota.customerId,
        quota.meter,
        quota.periodEnd,
        quota.usage,
        quota.hardLimit,
        quota.state,
        quota.notified,
        quota.asOf,
        quota.nextDecision,
        quota.spendRunway ?? null,
        quota.countedAt ?? null,
      ],
    ),
  );
}

export interface SpendBlockDecision {
  /** Internal customer id. */
  customerId: string;
  /** The charged meters a block refuses; lifting lifts every spend block of the customer. */
  meters: string[];
  blocked: boolean;
  /** The end of the period the block belongs to. */
  resetsAt: Date;
  now: Date;
  actor: AuditActor;
}

/**
 * Records that a customer's spend limit was reached past its grace period (its charged meters
 * refused, 402), or that this no longer holds, with one audit entry in the same transaction when
 * anything changed. Independent of hard-limit blocks. False when a meter is unknown.
 */
export function saveSpendBlock(pool: Pool, decision: SpendBlockDecision): Promise<boolean> {
  const { customerId, meters, blocked, resetsAt, now, actor } = decision;
  return knownCustomerAndMeter(
    inTransaction(pool, async (client) => {
      const changed = blocked
        ? await client.query(
            `insert into entitlements as e (customer_id, meter, blocked, spend_blocked, resets_at, updated_at)
             select $1, m, false, true, $3, $4 from unnest($2::text[]) as m
             on conflict (customer_id, meter) do update
               set spend_blocked = true, resets_at = excluded.resets_at, updated_at = excluded.updated_at
               where not e.spend_blocked or e.resets_at <> excluded.resets_at`,
            [customerId, meters, resetsAt, now],
          )
        : await client.query(`update entitlements set spend_blocked = false, updated_at = $2 where customer_id = $1 and spend_blocked`, [
            customerId,
            now,
          ]);
      if (changed.rowCount) {
        await recordAudit(client, {
          actor,
          action: blocked ? 'entitlement.spend_blocked' : 'entitlement.spend_unblocked',
          subjectType: 'customer',
          subjectId: customerId,
          details: { customer_id: customerId, ...(blocked ? { meters, reason: 'spend_limit', resets_at: resetsAt.toISOString() } : {}) },
        });
      }
    }),
  );
}
