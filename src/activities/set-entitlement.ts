import { ApplicationFailure } from '@temporalio/activity';
import type { Clock } from '../clock';
import { recordAudit } from '../db/audit';
import type { Pool } from '../db/pool';
import { inTransaction } from '../db/transaction';
import type { BillingPeriodActivities } from '../workflows/billing-period';
import { workflowActor } from './workflow-actor';

export type SetEntitlementInput = Parameters<BillingPeriodActivities['setEntitlement']>[0];

const FOREIGN_KEY_VIOLATION = '23503';

/**
 * Records the billing workflow's decision that a customer may (not) use a meter, for every API
 * process to enforce from memory (the table's trigger NOTIFYs them at commit). Idempotent: a
 * retry, or the same decision twice, changes nothing and writes no second audit entry; only a
 * real change is written, with its audit entry in the same transaction.
 */
export function createSetEntitlement(deps: { pool: Pool; clock: Clock }): BillingPeriodActivities['setEntitlement'] {
  return async ({ customerId, meter, blocked, periodEnd }) => {
    const resetsAt = new Date(periodEnd);
    if (Number.isNaN(resetsAt.getTime()))
      throw ApplicationFailure.nonRetryable(`periodEnd ${JSON.stringify(periodEnd)} is not a timestamp`, 'invalid_input');
    const now = deps.clock.now();
    try {
      await inTransaction(deps.pool, async (client) => {
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
            actor: workflowActor(),
            action: blocked ? 'entitlement.blocked' : 'entitlement.unblocked',
            subjectType: 'entitlement',
            subjectId: `${customerId}/${meter}`,
            details: { customer_id: customerId, meter, ...(blocked ? { reason: 'hard_limit', resets_at: resetsAt.toISOString() } : {}) },
          });
        }
      });
    } catch (err) {
      if ((err as { code?: unknown }).code === FOREIGN_KEY_VIOLATION) {
        throw ApplicationFailure.nonRetryable(`no customer ${customerId} or no meter "${meter}"`, 'unknown_customer_or_meter');
      }
      throw err;
    }
  };
}

/**
 * Publishes a limited meter's state after the workflow evaluated it, for quota checks to answer
 * from memory (the row's trigger NOTIFYs every API process). Not an access change, so no audit
 * entry: blocks are audited above. A retry, or a publish overtaken by a later one, changes nothing.
 */
export function createPublishQuota(deps: { pool: Pool }): BillingPeriodActivities['publishQuota'] {
  return async ({ customerId, meter, usage, hardLimit, state, notified, periodEnd, asOf }) => {
    try {
      await deps.pool.query(
        `insert into entitlements as e (customer_id, meter, blocked, resets_at, updated_at, usage, hard_limit, limit_state, notified, usage_as_of)
         values ($1, $2, false, $3, $8, $4, $5, $6, $7, $8)
         on conflict (customer_id, meter) do update
           set usage = excluded.usage, hard_limit = excluded.hard_limit, limit_state = excluded.limit_state, notified = excluded.notified,
               usage_as_of = excluded.usage_as_of, updated_at = excluded.updated_at,
               resets_at = case when e.blocked then e.resets_at else excluded.resets_at end
           where e.usage_as_of is null or e.usage_as_of <= excluded.usage_as_of`,
        [customerId, meter, new Date(periodEnd), usage, hardLimit, state, notified, new Date(asOf)],
      );
    } catch (err) {
      if ((err as { code?: unknown }).code === FOREIGN_KEY_VIOLATION) {
        throw ApplicationFailure.nonRetryable(`no customer ${customerId} or no meter "${meter}"`, 'unknown_customer_or_meter');
      }
      throw err;
    }
  };
}
