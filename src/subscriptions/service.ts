import type { Clock } from '../clock';
import type { CustomerService } from '../customers/service';
import type { AuditActor } from '../db/audit';
import type { Pool } from '../db/pool';
import { minorUnits, type CurrencyCode } from '../domain/currencies';
import { isRepresentableInstant } from '../domain/input-checks';
import { changeDirection, type ChangeDirection } from '../domain/plan-change-direction';
import type { ChangeEffect } from '../domain/plan-change-effect';
import { billedPeriodContaining, type BillingSchedule } from '../domain/billing-schedule';
import { Decimal } from '../domain/money';
import type { SpendThresholds } from '../domain/spend-thresholds-schema';
import { measurePlanUsage } from '../metering/plan-usage';
import type { SpendCap } from '../domain/spend-limit-schema';
import { ok, refuse, type Ok, type Refusal, type Result } from '../domain/result';
import { auditActorOf, seesCustomerId, type Actor } from '../keys/principal';
import { getPlan } from '../plans/store';
import type { SubscriptionLifecycle } from './lifecycle';
import {
  applyDueChanges,
  billedPeriodAt,
  cancelSubscription,
  changePlan,
  createSubscription,
  setSpendThresholds,
  getActiveSubscription,
  getSubscription,
  setSpendCap,
  type ChangePlanResult,
  type Subscription,
} from './store';

export type LifecycleStep = keyof SubscriptionLifecycle;

/** The end of the first billed period (epoch ms). */
const firstPeriodEnd = (schedule: BillingSchedule) => billedPeriodContaining(schedule, schedule.start).end.getTime();

/** What each step does to the billing workflow, as a failure tells it: "could not be …". */
export const lifecycleStepDone = {
  started: 'started',
  canceled: 'told of the cancellation',
  planChanged: 'moved to the new plan',
  spendThresholdsChanged: 'given the new spend thresholds',
  spendCapChanged: 'given the new spend cap',
} as const satisfies Record<LifecycleStep, string>;

/**
 * The change is saved, but its billing workflow step failed after the commit. Every step is
 * idempotent, so the same request again converges. `step` and `cause` are for the adapter (its
 * log, its own wording); only `details` is shown to an API client.
 */
export interface LifecycleStepFailed extends Refusal<'workflow_step_failed'> {
  details: { subscription: string };
  step: LifecycleStep;
  cause: unknown;
}

export const isLifecycleStepFailed = (result: Result<unknown>): result is LifecycleStepFailed =>
  !result.ok && result.reason === 'workflow_step_failed';

/** The customer already has another active subscription; `existing` is it, for adapters that may show it. */
export interface SubscriptionExists extends Refusal<'subscription_exists'> {
  details: { existing: Subscription };
}

export interface SubscribeInput {
  /** External id of the customer. */
  customer: string;
  /** Code of the plan. */
  plan: string;
  /** The subscription start, when billing begins; default now. */
  start?: Date;
  /** Every period boundary is one of this anchor's (src/domain/billing-schedule.ts); default the start. */
  billingAnchor?: Date;
  /** Progressive billing; default none. */
  spendThresholds?: SpendThresholds;
  /** What one period of usage may cost, in the plan's currency; absent or null: no cap. */
  spendCap?: SpendCap | null;
}

/** A subscription after a change, and whether the request changed it or repeated a change that is already saved. */
export type Subscribed = { created: boolean; subscription: Subscription };
export type Canceled = { canceled: boolean; subscription: Subscription };
export type PlanChanged = {
  changed: boolean;
  subscription: Subscription;
  direction: ChangeDirection;
  /** When the change takes effect: now, or the end of the period (then it is the subscription's pending change). */
  effectiveAt: Date;
};

// In the domain, so the billing workflow's Update checks them too; routes and the CLI take them from here.
export { changeEffects, type ChangeEffect } from '../domain/plan-change-effect';
export type SpendThresholdsChanged = { changed: boolean; subscription: Subscription };
export type SpendCapChanged = { changed: boolean; subscription: Subscription };

export interface SubscriptionServiceDeps {
  pool: Pool;
  clock: Clock;
  customers: CustomerService;
  /** The billing workflow's side of every change, run after the commit. */
  lifecycle: SubscriptionLifecycle;
}

/**
 * Subscriptions and their billing workflows. A customer has at most one active subscription;
 * every change is committed first, then handed to the lifecycle, so a request repeated after a
 * failed step converges instead of duplicating work. A key restricted to one customer sees other
 * customers' subscriptions as absent.
 */
export class SubscriptionService {
  constructor(private readonly deps: SubscriptionServiceDeps) {}

  /** Subscribes the customer; the same request again (same plan, and the same start or none) is a retry, not a second subscription. */
  async subscribe(
    actor: Actor,
    input: SubscribeInput,
  ): Promise<
    | Ok<Subscribed>
    | Refusal<'unknown_customer' | 'unknown_plan' | 'currency_mismatch' | 'start_out_of_range' | 'spend_cap_precision'>
    | SubscriptionExists
    | LifecycleStepFailed
  > {
    const { pool, clock, customers } = this.deps;
    const [customer, plan] = await Promise.all([customers.get(actor, input.customer, 'reference'), getPlan(pool, input.plan)]);
    if (!customer.ok) return customer;
    if (!plan) return refuse('invalid', 'unknown_plan', `No plan "${input.plan}".`);
    const { currency } = customer.value;
    if (plan.currency !== currency) {
      return refuse(
        'invalid',
        'currency_mismatch',
        `Customer "${input.customer}" is billed in ${currency}, plan "${plan.id}" in ${plan.currency}.`,
      );
    }
    const precision = spendCapPrecision(input.spendCap, plan.currency);
    if (precision) return precision;
    const anchor = input.start ?? clock.now();
    // Invoices store their period's end: the first period must end within the representable range.
    if (!isRepresentableInstant(firstPeriodEnd({ start: anchor, billingAnchor: input.billingAnchor ?? anchor, interval: plan.interval }))) {
      return refuse(
        'invalid',
        'start_out_of_range',
        `A subscription starting ${anchor.toISOString()} on plan "${plan.id}" would end its first period after 9999-12-31.`,
      );
    }
    const saved = await createSubscription(pool, {
      customerId: customer.value.id,
      planCode: plan.id,
      anchor,
      ...(input.billingAnchor ? { billingAnchor: input.billingAnchor } : {}),
      actor: auditActorOf(actor),
      ...(input.spendThresholds ? { spendThresholds: input.spendThresholds } : {}),
      spendCap: input.spendCap ?? null,
    });
    if (saved.created) return this.afterCommit('started', { created: true, subscription: saved.subscription });
    const { existing } = saved;
    if (
      existing.plan.id !== plan.id ||
      (input.start !== undefined && existing.anchor.getTime() !== anchor.getTime()) ||
      (input.billingAnchor !== undefined && existing.billingAnchor.getTime() !== input.billingAnchor.getTime()) ||
      (input.spendThresholds !== undefined && !sameThresholds(existing.spendThresholds, input.spendThresholds)) ||
      (input.spendCap !== undefined && !sameSpendCap(existing.spendCap, input.spendCap))
    ) {
      return {
        ...refuse(
          'conflict',
          'subscription_exists',
          `Customer "${input.customer}" already has an active subscription; cancel it or change its plan.`,
        ),
        details: { existing },
      };
    }
    return this.afterCommit('started', { created: false, subscription: existing });
  }

  /** The subscription, when it exists and the actor may see its customer. */
  async get(actor: Actor, id: string): Promise<Result<Subscription, 'unknown_subscription'>> {
    const subscription = await getSubscription(this.deps.pool, id);
    return subscription && seesCustomerId(actor, subscription.customer.id) ? ok(subscription) : unknownSubscription(id);
  }

  /** The customer's one active subscription. */
  async active(actor: Actor, externalId: string): Promise<Result<Subscription, 'unknown_customer' | 'no_active_subscription'>> {
    const customer = await this.deps.customers.get(actor, externalId, 'subject');
    if (!customer.ok) return customer;
    const subscription = await getActiveSubscription(this.deps.pool, customer.value.id);
    return subscription
      ? ok(subscription)
      : refuse('not_found', 'no_active_subscription', `Customer "${externalId}" has no active subscription.`);
  }

  /** Cancels now; billing ends at once and the workflow invoices the final period. Canceling again is a retry. */
  async cancel(actor: Actor, id: string): Promise<Ok<Canceled> | Refusal<'unknown_subscription'> | LifecycleStepFailed> {
    const visible = await this.get(actor, id);
    if (!visible.ok) return visible;
    const result = await cancelSubscription(this.deps.pool, id, this.deps.clock.now(), auditActorOf(actor));
    if (!result) return unknownSubscription(id);
    // Also when it was already canceled: a retry after a failed step converges.
    return this.afterCommit('canceled', result);
  }

  /**
   * Moves the subscription to another plan: at once, or at the end of the current period. Without
   * `effective`, an upgrade takes effect at once and a downgrade at the period end (see
   * src/domain/plan-change-direction.ts). The billed period is split at the change (each part on
   * its own plan, fixed fees prorated); a scheduled change is applied by the billing workflow when
   * it enters the next period. A retry finds the change already made or scheduled.
   */
  async changePlan(
    actor: Actor,
    id: string,
    planCode: string,
    effective?: ChangeEffect,
  ): Promise<
    | Ok<PlanChanged>
    | Refusal<'unknown_subscription' | 'subscription_canceled' | 'unknown_plan' | 'currency_mismatch' | 'interval_mismatch'>
    | LifecycleStepFailed
  > {
    const visible = await this.get(actor, id);
    if (!visible.ok) return visible;
    const current = visible.value;
    if (current.status !== 'active') return refusedChange('subscription_canceled', id, planCode);
    const target = await getPlan(this.deps.pool, planCode);
    if (!target) return refusedChange('unknown_plan', id, planCode);
    // Periods are derived from the anchor and the interval: a plan with another interval would move the period boundaries.
    if (JSON.stringify(target.interval) !== JSON.stringify(current.plan.interval)) {
      return refuse(
        'invalid',
        'interval_mismatch',
        `Plan "${planCode}" bills on another interval than subscription ${id}; subscribe the customer again to change it.`,
      );
    }
    const now = this.deps.clock.now();
    const period = billedPeriodAt(current, now);
    const soFar = new Date(Math.max(now.getTime(), period.start.getTime()));
    const usage = await measurePlanUsage(this.deps.pool, [current.plan, target], current.customer.id, period.start, soFar);
    const direction = changeDirection(current.plan, target, usage);
    // The pending change asked again without saying when is that change, even if usage since has flipped its direction.
    const repeatsPending = effective === undefined && current.pendingChange?.toPlan === planCode;
    const atPeriodEnd = repeatsPending || (effective ?? (direction === 'downgrade' ? 'period_end' : 'immediately')) === 'period_end';
    const timing = atPeriodEnd ? { scheduled: true, at: period.end } : { scheduled: false, at: now };
    const result = await changePlan(this.deps.pool, id, planCode, auditActorOf(actor), timing);
    if (result.outcome === 'refused') return refusedChange(result.reason, id, planCode);
    const value = { changed: result.outcome === 'changed', subscription: result.subscription, direction, effectiveAt: timing.at };
    // A scheduled change reaches the workflow at the boundary; an immediate one now (also when
    // unchanged: a retry after a failed step converges).
    return atPeriodEnd ? ok(value) : this.afterCommit('planChanged', value);
  }

  /**
   * Puts the subscription's scheduled change into force when `at` (the start of the period its
   * workflow enters) has reached it; the subscription as it then is. For the billing workflow.
   */
  async enterPeriod(actor: AuditActor, id: string, at: Date): Promise<Result<Subscription, 'unknown_subscription'>> {
    const subscription = await applyDueChanges(this.deps.pool, id, at, this.deps.clock.now(), actor);
    return subscription ? ok(subscription) : unknownSubscription(id);
  }

  /** Replaces the spend thresholds (progressive billing); the open period is priced against them at once. A retry finds them set. */
  async changeSpendThresholds(
    actor: Actor,
    id: string,
    thresholds: SpendThresholds,
  ): Promise<Ok<SpendThresholdsChanged> | Refusal<'unknown_subscription' | 'subscription_canceled'> | LifecycleStepFailed> {
    const visible = await this.get(actor, id);
    if (!visible.ok) return visible;
    const result = await setSpendThresholds(this.deps.pool, id, thresholds, auditActorOf(actor));
    if (result.outcome === 'refused') {
      return result.reason === 'subscription_not_found'
        ? unknownSubscription(id)
        : refuse('conflict', 'subscription_canceled', `Subscription ${id} is canceled; subscribe the customer again instead.`);
    }
    // Also when unchanged: a retry after a failed step converges.
    return this.afterCommit('spendThresholdsChanged', { changed: result.outcome === 'changed', subscription: result.subscription });
  }

  /**
   * Sets the spend cap (null removes it), effective at once for the period in progress: the
   * billing workflow prices it again, so a higher cap unblocks and a lower one may block. A retry
   * finds it already set.
   */
  async setSpendCap(
    actor: Actor,
    id: string,
    spendCap: SpendCap | null,
  ): Promise<
    Ok<SpendCapChanged> | Refusal<'unknown_subscription' | 'subscription_canceled' | 'spend_cap_precision'> | LifecycleStepFailed
  > {
    const visible = await this.get(actor, id);
    if (!visible.ok) return visible;
    const precision = spendCapPrecision(spendCap, visible.value.plan.currency);
    if (precision) return precision;
    const result = await setSpendCap(this.deps.pool, id, spendCap, auditActorOf(actor));
    if (result.outcome === 'refused') {
      return result.reason === 'subscription_not_found'
        ? unknownSubscription(id)
        : refuse('conflict', result.reason, `Subscription ${id} is canceled; subscribe the customer again instead.`);
    }
    // Also when unchanged: a retry after a failed step converges.
    return this.afterCommit('spendCapChanged', { changed: result.outcome === 'changed', subscription: result.subscription });
  }

  /** Runs the lifecycle step for a committed change; its failure leaves the change saved and is answered as such. */
  private async afterCommit<T extends { subscription: Subscription }>(step: LifecycleStep, value: T): Promise<Ok<T> | LifecycleStepFailed> {
    const { subscription } = value;
    try {
      await this.deps.lifecycle[step](subscription);
    } catch (cause) {
      return {
        ...refuse(
          'unavailable',
          'workflow_step_failed',
          `Subscription ${subscription.id} is saved, but its billing workflow could not be ${lifecycleStepDone[step]}; retry the same request.`,
        ),
        details: { subscription: subscription.id },
        step,
        cause,
      };
    }
    return ok(value);
  }
}

/** The same thresholds, whatever the notation of their amounts ("500" and "500.00"). */
const sameThresholds = (a: SpendThresholds, b: SpendThresholds) =>
  (a.every === null ? b.every === null : b.every !== null && new Decimal(a.every).eq(b.every)) &&
  a.amounts.length === b.amounts.length &&
  a.amounts.every((x, i) => new Decimal(x).eq(b.amounts[i]!));

/** A cap is money in the plan's currency: no more digits than its minor unit. */
function spendCapPrecision(spendCap: SpendCap | null | undefined, currency: CurrencyCode): Refusal<'spend_cap_precision'> | undefined {
  if (!spendCap) return undefined;
  const digits = minorUnits(currency);
  if (new Decimal(spendCap.amount).decimalPlaces() <= digits) return undefined;
  return refuse(
    'invalid',
    'spend_cap_precision',
    `A spend cap in ${currency} has at most ${digits} decimal places; got ${spendCap.amount}.`,
  );
}

const softPercents = (cap: SpendCap) => (cap.soft_thresholds ?? []).map((t) => t.percent).join(',');

/** The same cap: amount by value, grace and soft thresholds as given. */
const sameSpendCap = (a: SpendCap | null, b: SpendCap | null) =>
  a === null || b === null
    ? a === b
    : new Decimal(a.amount).eq(b.amount) && a.grace_period === b.grace_period && softPercents(a) === softPercents(b);

const unknownSubscription = (id: string) => refuse('not_found', 'unknown_subscription', `No subscription ${id}.`);

function refusedChange(reason: Extract<ChangePlanResult, { outcome: 'refused' }>['reason'], id: string, planCode: string) {
  switch (reason) {
    case 'subscription_not_found':
      return unknownSubscription(id);
    case 'subscription_canceled':
      return refuse('conflict', reason, `Subscription ${id} is canceled; subscribe the customer again instead.`);
    case 'unknown_plan':
      return refuse('invalid', reason, `No plan "${planCode}".`);
    case 'currency_mismatch':
      return refuse('invalid', reason, `Plan "${planCode}" is in another currency than subscription ${id}.`);
  }
}
