import { recordAudit, type AuditActor } from '../db/audit';
import type { Pool } from '../db/pool';
import { billedPeriodContaining, type BillingSchedule } from '../domain/billing-schedule';
import type { Period } from '../domain/periods';
import type { Plan } from '../domain/plan';
import type { SpendThresholds } from '../domain/spend-thresholds-schema';
import type { PlanTimeline } from '../domain/plan-segments';
import type { SpendCap } from '../domain/spend-limit-schema';
import { inTransaction, type Queryable } from '../db/transaction';
import { getPlan, planTermColumns, toPlanTerms, type PlanTermsRow } from '../plans/store';
import { lastInterimCut, lockCustomerInvoicing } from './invoicing-cut';

export const subscriptionStatuses = ['active', 'canceled'] as const;
export type SubscriptionStatus = (typeof subscriptionStatuses)[number];

/** A subscription with its customer and the full terms of its current plan, as the billing workflow needs them. */
export interface Subscription {
  id: string;
  customer: { id: string; externalId: string };
  plan: Plan;
  /** The subscription start: billing begins here. */
  anchor: Date;
  /** Every billing period is derived from it: the start unless another was given (src/domain/billing-schedule.ts). */
  billingAnchor: Date;
  status: SubscriptionStatus;
  /** When billing ends: the final period is cut short here. */
  cancelAt: Date | null;
  /** When the cancellation was recorded. */
  canceledAt: Date | null;
  /** What one period of usage may cost, in the plan's currency; null: no cap. */
  spendCap: SpendCap | null;
  createdAt: Date;
  /** Progressive billing: interim invoices when the open period's priced usage reaches these. */
  spendThresholds: SpendThresholds;
  /** A plan change scheduled for later (a downgrade at the period end), not yet in force. */
  pendingChange: { toPlan: string; effectiveAt: Date } | null;
}

export interface SubscriptionChange {
  id: string;
  subscriptionId: string;
  fromPlan: string;
  toPlan: string;
  effectiveAt: Date;
  actor: AuditActor;
}

type SubscriptionRow = PlanTermsRow & {
  id: string;
  customer_id: string;
  customer_external_id: string;
  anchor: Date;
  billing_anchor: Date;
  status: SubscriptionStatus;
  cancel_at: Date | null;
  canceled_at: Date | null;
  spend_cap: SpendCap | null;
  created_at: Date;
  spend_threshold_amounts: string[];
  spend_threshold_every: string | null;
  pending_plan: string | null;
  pending_effective_at: Date | null;
};

const selectSubscriptions = `select ${planTermColumns},
    s.id, s.customer_id, c.external_id as customer_external_id, s.anchor,
    coalesce(s.billing_anchor, s.anchor) as billing_anchor, s.status, s.cancel_at, s.canceled_at, s.spend_cap, s.created_at,
    s.spend_threshold_amounts::text[], s.spend_threshold_every::text,
    pc.to_plan as pending_plan, pc.effective_at as pending_effective_at
  from subscriptions s join customers c on c.id = s.customer_id join plans p on p.code = s.plan_code
  left join subscription_changes pc on pc.subscription_id = s.id and pc.applied_at is null`;

function toSubscription(r: SubscriptionRow): Subscription {
  return {
    id: r.id,
    customer: { id: r.customer_id, externalId: r.customer_external_id },
    plan: toPlanTerms(r),
    anchor: r.anchor,
    billingAnchor: r.billing_anchor,
    status: r.status,
    cancelAt: r.cancel_at,
    canceledAt: r.canceled_at,
    spendCap: r.spend_cap,
    createdAt: r.created_at,
    spendThresholds: { amounts: r.spend_threshold_amounts, every: r.spend_threshold_every },
    pendingChange: r.pending_plan === null ? null : { toPlan: r.pending_plan, effectiveAt: r.pending_effective_at! },
  };
}

/** When the subscription is billed: periods from its billing anchor, billing from its start. */
export const billingScheduleOf = (s: Subscription): BillingSchedule => ({
  start: s.anchor,
  billingAnchor: s.billingAnchor,
  interval: s.plan.interval,
});

/** The billed period holding `at`, or the first one while the start is still ahead. */
export const billedPeriodAt = (s: Subscription, at: Date): Period =>
  billedPeriodContaining(billingScheduleOf(s), Math.max(at.getTime(), s.anchor.getTime()));

async function selectOne(db: Queryable, where: string, params: unknown[]): Promise<Subscription | undefined> {
  const { rows } = await db.query<SubscriptionRow>(`${selectSubscriptions} where ${where}`, params);
  return rows[0] && toSubscription(rows[0]);
}

export const getSubscription = (db: Queryable, id: string) => selectOne(db, 's.id = $1', [id]);

/** The customer's one active subscription, if any. */
export const getActiveSubscription = (db: Queryable, customerId: string) =>
  selectOne(db, "s.customer_id = $1 and s.status = 'active'", [customerId]);

/**
 * The plan the subscription had at `at`: the target of its last change effective by then, else
 * the plan its first later change left, else its current plan (it never changed).
 */
export async function planInEffect(db: Queryable, subscriptionId: string, at: Date): Promise<string | undefined> {
  const { rows } = await db.query<{ plan_code: string }>(
    `select coalesce(
       (select to_plan from subscription_changes where subscription_id = $1 and effective_at <= $2 order by effective_at desc, id desc limit 1),
       (select from_plan from subscription_changes where subscription_id = $1 and effective_at > $2 order by effective_at, id limit 1),
       s.plan_code) as plan_code
       from subscriptions s where s.id = $1`,
    [subscriptionId, at],
  );
  return rows[0]?.plan_code;
}

/**
 * The subscription's billing anchor and plan timeline: the plan it started on and every change, scheduled
 * ones included, in the order they take effect. What invoices split periods by. Also when its
 * billing ends (a recorded cancellation), which no interim invoice is cut after.
 */
export async function planTimelineOf(
  db: Queryable,
  subscriptionId: string,
): Promise<{ billingAnchor: Date; timeline: PlanTimeline; cancelAt: Date | null } | undefined> {
  const { rows: subscriptions } = await db.query<{ billing_anchor: Date; plan_code: string; cancel_at: Date | null }>(
    'select coalesce(billing_anchor, anchor) as billing_anchor, plan_code, cancel_at from subscriptions where id = $1',
    [subscriptionId],
  );
  const subscription = subscriptions[0];
  if (!subscription) return undefined;
  const { rows: changes } = await db.query<{ from_plan: string; to_plan: string; effective_at: Date }>(
    'select from_plan, to_plan, effective_at from subscription_changes where subscription_id = $1 order by effective_at, id',
    [subscriptionId],
  );
  return {
    billingAnchor: subscription.billing_anchor,
    cancelAt: subscription.cancel_at,
    timeline: {
      initialPlan: changes[0]?.from_plan ?? subscription.plan_code,
      changes: changes.map((c) => ({ at: c.effective_at.getTime(), toPlan: c.to_plan })),
    },
  };
}

export interface NewSubscription {
  customerId: string;
  planCode: string;
  anchor: Date;
  /** Absent: the start anchors every period. */
  billingAnchor?: Date;
  /** Absent or null: no spend cap. */
  spendCap?: SpendCap | null;
  actor: AuditActor;
  spendThresholds?: SpendThresholds;
}

export type CreateSubscriptionResult = { created: true; subscription: Subscription } | { created: false; existing: Subscription };

/**
 * Creates an active subscription and its `subscription.created` audit entry in one transaction,
 * or returns the customer's active subscription when there already is one (the partial unique
 * index decides, so concurrent requests cannot both succeed).
 */
export async function createSubscription(pool: Pool, input: NewSubscription): Promise<CreateSubscriptionResult> {
  return inTransaction(pool, async (client) => {
    let id: string | undefined;
    // Each statement sees the latest commits: if the active subscription that blocked the insert
    // is canceled before it can be read, the insert is simply tried again.
    while (id === undefined) {
      const { rows } = await client.query<{ id: string }>(
        `insert into subscriptions (customer_id, plan_code, anchor, spend_threshold_amounts, spend_threshold_every, spend_cap, billing_anchor)
         values ($1, $2, $3, $4::numeric[], $5, $6, $7)
         on conflict (customer_id) where status = 'active' do nothing returning id`,
        [
          input.customerId,
          input.planCode,
          input.anchor,
          input.spendThresholds?.amounts ?? [],
          input.spendThresholds?.every ?? null,
          input.spendCap ?? null,
          input.billingAnchor ?? null,
        ],
      );
      id = rows[0]?.id;
      const existing = id === undefined ? await getActiveSubscription(client, input.customerId) : undefined;
      if (existing) return { created: false, existing };
    }
    const subscription = (await getSubscription(client, id))!;
    await recordAudit(client, {
      actor: input.actor,
      action: 'subscription.created',
      subjectType: 'subscription',
      subjectId: subscription.id,
      details: {
        customer: subscription.customer.externalId,
        plan: input.planCode,
        anchor: input.anchor.toISOString(),
        ...(input.billingAnchor ? { billing_anchor: input.billingAnchor.toISOString() } : {}),
        ...(input.spendThresholds ? { spend_thresholds: subscription.spendThresholds } : {}),
        ...(input.spendCap ? { spend_cap: input.spendCap } : {}),
      },
    });
    return { created: true, subscription };
  });
}

export type CancelSubscriptionResult = { canceled: boolean; subscription: Subscription } | undefined;

/**
 * Cancels at `at`, which is both when billing ends and when the cancellation is recorded, with a
 * `subscription.canceled` audit entry in the same transaction. An already canceled subscription
 * is returned as it is (canceled: false), so a retried request converges; undefined when absent.
 *
 * An interim invoice already cut after `at` (the billing workflow cut it on its own clock before
 * it heard of the cancellation) billed usage up to its cut: billing ends there instead, so the
 * final invoice deducts only what it bills itself. Taken under the customer's invoicing lock, as
 * interim invoices are drafted, so no cut can slip in between.
 */
export async function cancelSubscription(pool: Pool, id: string, at: Date, actor: AuditActor): Promise<CancelSubscriptionResult> {
  return inTransaction(pool, async (client) => {
    const { rows: owners } = await client.query<{ customer_id: string }>('select customer_id from subscriptions where id = $1', [id]);
    if (owners[0]) await lockCustomerInvoicing(client, owners[0].customer_id);
    const cut = await lastInterimCut(client, id);
    const endsAt = cut && cut > at ? cut : at;
    const { rowCount } = await client.query(
      `update subscriptions set status = 'canceled', cancel_at = $2, canceled_at = $2 where id = $1 and status = 'active'`,
      [id, endsAt],
    );
    // A change scheduled after the end of billing never takes effect.
    if (rowCount !== 0) await client.query('delete from subscription_changes where subscription_id = $1 and applied_at is null', [id]);
    const subscription = await getSubscription(client, id);
    if (!subscription) return undefined;
    if (rowCount === 0) return { canceled: false, subscription };
    await recordAudit(client, {
      actor,
      action: 'subscription.canceled',
      subjectType: 'subscription',
      subjectId: id,
      details: { customer: subscription.customer.externalId, plan: subscription.plan.id, cancel_at: endsAt.toISOString() },
    });
    return { canceled: true, subscription };
  });
}

export type ChangePlanResult =
  | { outcome: 'changed'; subscription: Subscription; change: SubscriptionChange }
  /** Already on the plan, or already scheduled for it: a retry of a change that committed. */
  | { outcome: 'unchanged'; subscription: Subscription }
  | { outcome: 'refused'; reason: 'subscription_not_found' | 'subscription_canceled' | 'unknown_plan' | 'currency_mismatch' };

/** When a requested change takes effect: now (the plan moves at once) or at a later instant (scheduled). */
export type ChangeTiming = { scheduled: false; at: Date } | { scheduled: true; at: Date };

/**
 * Moves an active subscription to another plan, or schedules the move, all in one transaction with
 * the subscription row locked, so concurrent changes apply one after the other: appends the change
 * to its history (applied now, or pending until `applyDueChanges`), moves its current plan when
 * the change is immediate, and writes a `subscription.plan_changed` audit entry. A new request
 * replaces a pending change (its row is deleted: it never took effect); asking for the current
 * plan while a change is pending drops that change. Refusals are results, not exceptions. A plan
 * in another currency is refused because one subscription's invoices share one currency.
 */
export async function changePlan(
  pool: Pool,
  subscriptionId: string,
  toPlan: string,
  actor: AuditActor,
  timing: ChangeTiming,
): Promise<ChangePlanResult> {
  return inTransaction(pool, async (client) => {
    const locked = await client.query<{ status: SubscriptionStatus }>('select status from subscriptions where id = $1 for update', [
      subscriptionId,
    ]);
    if (!locked.rows[0]) return { outcome: 'refused', reason: 'subscription_not_found' };
    if (locked.rows[0].status !== 'active') return { outcome: 'refused', reason: 'subscription_canceled' };
    const current = (await getSubscription(client, subscriptionId))!;
    const pending = current.pendingChange;
    // Asked at once, the change to the pending plan is no repeat: it replaces the pending change.
    const sameAsPending = pending?.toPlan === toPlan && timing.scheduled && pending.effectiveAt.getTime() === timing.at.getTime();
    if ((current.plan.id === toPlan && !pending) || sameAsPending) return { outcome: 'unchanged', subscription: current };
    const target = await getPlan(client, toPlan);
    if (!target) return { outcome: 'refused', reason: 'unknown_plan' };
    if (target.currency !== current.plan.currency) return { outcome: 'refused', reason: 'currency_mismatch' };

    if (pending) {
      await client.query('delete from subscription_changes where subscription_id = $1 and applied_at is null', [subscriptionId]);
      await recordAudit(client, {
        actor,
        action: 'subscription.plan_change_dropped',
        subjectType: 'subscription',
        subjectId: subscriptionId,
        details: { to_plan: pending.toPlan, effective_at: pending.effectiveAt.toISOString(), replaced_by: toPlan },
      });
      if (current.plan.id === toPlan) return { outcome: 'unchanged', subscription: (await getSubscription(client, subscriptionId))! };
    }
    if (!timing.scheduled) await client.query('update subscriptions set plan_code = $2 where id = $1', [subscriptionId, toPlan]);
    const { rows } = await client.query<{ id: string }>(
      `insert into subscription_changes (subscription_id, from_plan, to_plan, effective_at, actor, applied_at)
       values ($1, $2, $3, $4, $5, $6) returning id`,
      [subscriptionId, current.plan.id, toPlan, timing.at, actor, timing.scheduled ? null : timing.at],
    );
    await recordAudit(client, {
      actor,
      action: timing.scheduled ? 'subscription.plan_change_scheduled' : 'subscription.plan_changed',
      subjectType: 'subscription',
      subjectId: subscriptionId,
      details: { from_plan: current.plan.id, to_plan: toPlan, effective_at: timing.at.toISOString() },
    });
    const change: SubscriptionChange = {
      id: rows[0]!.id,
      subscriptionId,
      fromPlan: current.plan.id,
      toPlan,
      effectiveAt: timing.at,
      actor,
    };
    return { outcome: 'changed', subscription: (await getSubscription(client, subscriptionId))!, change };
  });
}

export type SetSpendThresholdsResult =
  | { outcome: 'changed' | 'unchanged'; subscription: Subscription }
  | { outcome: 'refused'; reason: 'subscription_not_found' | 'subscription_canceled' };

const sameThresholds = (a: SpendThresholds, b: SpendThresholds) =>
  a.every === b.every && a.amounts.length === b.amounts.length && a.amounts.every((x, i) => x === b.amounts[i]);

/**
 * Replaces an active subscription's spend thresholds (amounts kept in the order given, as
 * normalized by Postgres) with a `subscription.spend_thresholds_changed` audit entry, in one
 * transaction with the row locked. The same thresholds again are a retry: unchanged, no entry.
 */
export async function setSpendThresholds(
  pool: Pool,
  subscriptionId: string,
  thresholds: SpendThresholds,
  actor: AuditActor,
): Promise<SetSpendThresholdsResult> {
  return inTransaction(pool, async (client) => {
    const locked = await client.query<{ status: SubscriptionStatus }>('select status from subscriptions where id = $1 for update', [
      subscriptionId,
    ]);
    if (!locked.rows[0]) return { outcome: 'refused', reason: 'subscription_not_found' };
    if (locked.rows[0].status !== 'active') return { outcome: 'refused', reason: 'subscription_canceled' };
    const before = (await getSubscription(client, subscriptionId))!;
    await client.query('update subscriptions set spend_threshold_amounts = $2::numeric[], spend_threshold_every = $3 where id = $1', [
      subscriptionId,
      thresholds.amounts,
      thresholds.every,
    ]);
    const after = (await getSubscription(client, subscriptionId))!;
    if (sameThresholds(before.spendThresholds, after.spendThresholds)) return { outcome: 'unchanged', subscription: after };
    await recordAudit(client, {
      actor,
      action: 'subscription.spend_thresholds_changed',
      subjectType: 'subscription',
      subjectId: subscriptionId,
      details: { customer: after.customer.externalId },
      before: { spend_thresholds: before.spendThresholds },
      after: { spend_thresholds: after.spendThresholds },
    });
    return { outcome: 'changed', subscription: after };
  });
}

/**
 * Puts a scheduled change whose instant has come (`at`: the start of the period being entered)
 * into force: the subscription's current plan becomes its target. Idempotent: once applied there
 * is nothing pending. Returns the subscription as it then is; undefined when absent.
 */
export async function applyDueChanges(
  pool: Pool,
  subscriptionId: string,
  at: Date,
  now: Date,
  actor: AuditActor,
): Promise<Subscription | undefined> {
  return inTransaction(pool, async (client) => {
    await client.query('select 1 from subscriptions where id = $1 for update', [subscriptionId]);
    const { rows } = await client.query<{ id: string; from_plan: string; to_plan: string; effective_at: Date }>(
      `update subscription_changes set applied_at = $3 where subscription_id = $1 and applied_at is null and effective_at <= $2
       returning id, from_plan, to_plan, effective_at`,
      [subscriptionId, at, now],
    );
    const due = rows[0];
    if (due) {
      await client.query(`update subscriptions set plan_code = $2 where id = $1 and status = 'active'`, [subscriptionId, due.to_plan]);
      await recordAudit(client, {
        actor,
        action: 'subscription.plan_changed',
        subjectType: 'subscription',
        subjectId: subscriptionId,
        details: { from_plan: due.from_plan, to_plan: due.to_plan, effective_at: due.effective_at.toISOString(), scheduled: true },
      });
    }
    return getSubscription(client, subscriptionId);
  });
}

export type SetSpendCapResult =
  | { outcome: 'changed' | 'unchanged'; subscription: Subscription }
  | { outcome: 'refused'; reason: 'subscription_not_found' | 'subscription_canceled' };

/**
 * Sets (or, with null, removes) an active subscription's spend cap, with a
 * `subscription.spend_cap_changed` audit entry in the same transaction, the row locked so
 * concurrent changes apply one after the other. The same cap again changes nothing: a retry.
 */
export async function setSpendCap(
  pool: Pool,
  subscriptionId: string,
  spendCap: SpendCap | null,
  actor: AuditActor,
): Promise<SetSpendCapResult> {
  return inTransaction(pool, async (client) => {
    const locked = await client.query<{ status: SubscriptionStatus; spend_cap: SpendCap | null }>(
      'select status, spend_cap from subscriptions where id = $1 for update',
      [subscriptionId],
    );
    const row = locked.rows[0];
    if (!row) return { outcome: 'refused', reason: 'subscription_not_found' };
    if (row.status !== 'active') return { outcome: 'refused', reason: 'subscription_canceled' };
    const { rowCount } = await client.query(
      'update subscriptions set spend_cap = $2 where id = $1 and spend_cap is distinct from $2::jsonb',
      [subscriptionId, spendCap],
    );
    if (rowCount) {
      await recordAudit(client, {
        actor,
        action: 'subscription.spend_cap_changed',
        subjectType: 'subscription',
        subjectId: subscriptionId,
        details: { from: row.spend_cap, to: spendCap },
      });
    }
    return { outcome: rowCount ? 'changed' : 'unchanged', subscription: (await getSubscription(client, subscriptionId))! };
  });
}
