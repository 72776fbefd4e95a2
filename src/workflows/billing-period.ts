import {
  allHandlersFinished,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  log,
  defineQuery,
  defineSignal,
  defineUpdate,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import { spendTopUpDue, type AutoTopUpOutcome } from '../domain/credit-drawdown';
import { Decimal } from '../domain/money';
import { isChangeEffect, type ChangeEffect } from '../domain/plan-change-effect';
import { billedPeriodContaining, nextBilledPeriod, type BillingSchedule } from '../domain/billing-schedule';
import type { BillingInterval } from '../domain/periods-schema';
import { evaluateLimit, nextDecision } from '../domain/quota-policy';
import type { LimitState, MeterLimit } from '../domain/quota-policy-schema';
import { evaluateSpendLimit, isSpendCap, type OpenPeriodSpend } from '../domain/spend-limit';
import type { SpendCap } from '../domain/spend-limit-schema';
import { hasSpendThresholds, isSpendThresholds } from '../domain/spend-thresholds';
import type { SpendThresholds } from '../domain/spend-thresholds-schema';
import { ACTIVITY_START_TO_CLOSE_MS, CLOSE_HEARTBEAT_MS, CLOSE_START_TO_CLOSE_MS } from './activity-timeouts';
import { startInvoiceCollection, type ChargeAttemptOutcome } from './invoice-collection';

/*
 * One customer's subscription, one run per billing period. Usage reports arrive as batched
 * signals (never one per event); each makes the run re-read the period's totals from the
 * real-time counters in Postgres (a local activity), which are the truth, so a report lost with
 * its producer costs nothing once anything else triggers a read. Limits are evaluated with the
 * shared quota policy, soft thresholds notify once per period, a hard limit blocks after its
 * grace period, and at the period end plus the allowed lateness the period is closed and the
 * workflow continues as new. Deterministic: no I/O and no Node APIs here; time is the
 * workflow's own clock.
 */

/** What the workflow needs from the outside world; implemented in src/activities. */
export interface BillingPeriodActivities {
  notifyThreshold(input: {
    subscriptionId: string;
    customer: string;
    meter: string;
    periodStart: string;
    threshold: string;
    usage: string;
  }): Promise<void>;
  setEntitlement(input: { customerId: string; meter: string; blocked: boolean; periodEnd: string }): Promise<void>;
  /**
   * The meter's state for quota checks to answer from memory; `asOf` orders publishes.
   * `nextDecision` is the usage at which the workflow next decides something (see
   * quota-policy's nextDecision): producers signal at once when usage nears it.
   */
  publishQuota(input: {
    customerId: string;
    meter: string;
    usage: string;
    hardLimit: string | null;
    state: LimitState['status'];
    notified: string[];
    nextDecision: string | null;
    /** With a spend limit: the usage of this meter at which the period's priced usage reaches it. */
    spendRunway?: string | null;
    periodEnd: string;
    asOf: string;
    /**
     * When the counters were read for `usage` (before the read began): it counts everything
     * stored before then, so producers drop what they stored earlier. Absent when unknown.
     */
    countedAt?: string;
  }): Promise<void>;
  /**
   * Prices the open period's usage from the real-time counters for the spend limit: what it
   * costs so far, what it may reach (the spend cap, or another source of available money) and
   * each charged meter's runway. Reads only.
   */
  priceSpend(input: {
    customerId: string;
    planCode: string;
    spendCap: SpendCap | null;
    /** The cap's soft thresholds already notified in this period. */
    notified: string[];
    periodStart: string;
    periodEnd: string;
  }): Promise<OpenPeriodSpend>;
  /** Notifies once per period that spend reached a soft threshold of the spend cap (idempotent per threshold and period). */
  notifySpendThreshold(input: {
    subscriptionId: string;
    customer: string;
    periodStart: string;
    threshold: string;
    spent: string;
    cap: string;
    currency: string;
  }): Promise<void>;
  /** Refuses (or stops refusing) usage of the charged meters because the spend limit is reached; audited. */
  setSpendBlock(input: { customerId: string; meters: string[]; blocked: boolean; periodEnd: string }): Promise<void>;
  /**
   * The customer's usage of these meters in [periodStart, periodEnd) from the real-time
   * counters: meter code → exact decimal total (count meters: events; sum meters: the sum of
   * values). Meters that do not add up (max, unique_count, latest) or do not exist are absent.
   */
  readUsageTotals(input: {
    customerId: string;
    meters: Array<{ code: string }>;
    periodStart: string;
    periodEnd: string;
  }): Promise<Record<string, string>>;
  /** Writes (or rewrites) the period's draft invoice under its natural key (customer, period start). */
  draftInvoice(input: {
    subscriptionId: string;
    customerId: string;
    planCode: string;
    periodStart: string;
    periodEnd: string;
  }): Promise<{ invoiceId: string }>;
  finalizeInvoice(input: { invoiceId: string }): Promise<{ invoiceId: string; status: string; total: string; currency: string }>;
  /**
   * The period's invoice (or an interim one) issued and charged in one activity task: drafted as
   * draftInvoice / draftInterimInvoice would, finalized, the automatic credit top-up run and
   * collection attempt 1 made (chargeInvoice's, under the same idempotency key). Every step is
   * idempotent, so a retry after a crash anywhere charges at most once.
   */
  issueAndCharge(
    input:
      | { period: Parameters<BillingPeriodActivities['draftInvoice']>[0] }
      | { interim: Parameters<BillingPeriodActivities['draftInterimInvoice']>[0] },
  ): Promise<{ invoiceId: string; firstAttempt: FirstChargeOutcome }>;
  /**
   * Progressive billing: prices [periodStart, until) from the raw events as an interim invoice
   * would (nothing saved) and says where the priced usage stands against the thresholds, with,
   * per charged meter, the usage at which the next threshold is reached (its spend decision point).
   */
  priceOpenPeriod(input: {
    subscriptionId: string;
    customerId: string;
    planCode: string;
    periodStart: string;
    until: string;
    thresholds: SpendThresholds;
  }): Promise<{ spend: string; reached: string | null; next: string | null; decisionPoints: Record<string, string | null> }>;
  /** Drafts the period's interim invoice number `sequence` for [periodStart, until) under its natural key. */
  draftInterimInvoice(input: {
    subscriptionId: string;
    customerId: string;
    planCode: string;
    periodStart: string;
    until: string;
    sequence: number;
    threshold: string;
  }): Promise<{ invoiceId: string }>;
  /**
   * Puts a plan change scheduled for `periodStart` (a downgrade at the period end) into force;
   * the plan and limits in effect for the period that starts there, and whether that plan settles
   * `credit_only` (absent in results recorded before it was returned).
   */
  enterPeriod(input: {
    subscriptionId: string;
    periodStart: string;
  }): Promise<{ planCode: string; limits: MeterLimit[]; creditOnly?: boolean }>;
}

/**
 * What the `changePlan` Update asks for from the Temporal UI: a plan change recorded in Postgres as
 * the API records one (src/activities/record-plan-change.ts). Apart from BillingPeriodActivities
 * so that workers and tests built before it need not provide it until they take such an Update.
 */
export interface PlanChangeActivities {
  /**
   * Changes the subscription's plan through the subscription service, `at` (the workflow's time)
   * being its "now": at once or at the period end (`effective`, by default by direction). The
   * subscription's current plan as it then is, and the change scheduled, if any.
   */
  recordPlanChange(input: { subscriptionId: string; plan: string; effective?: ChangeEffect; at: string }): Promise<{
    changed: boolean;
    direction: 'upgrade' | 'downgrade';
    effectiveAt: string;
    planCode: string;
    limits: MeterLimit[];
    creditOnly: boolean;
    pendingChange: { plan: string; effectiveAt: string } | null;
  }>;
}

/** The spend path's automatic top-up: apart, as only workers with prepaid credits register it (SPEND_AUTO_TOP_UP). */
export interface SpendTopUpActivities {
  /**
   * A credit_only period whose credit left (`available` − `spent`) fell below the customer's
   * automatic top-up threshold, or ran out: buys the top-up through the payment provider, once
   * per balance priced against (its natural key).
   */
  autoTopUpForSpend(input: {
    customerId: string;
    customer: string;
    currency: string;
    subscriptionId: string;
    periodStart: string;
    available: string;
    spent: string;
  }): Promise<AutoTopUpOutcome>;
}

const {
  notifyThreshold,
  notifySpendThreshold,
  setEntitlement,
  setSpendBlock,
  publishQuota,
  draftInvoice,
  draftInterimInvoice,
  finalizeInvoice,
  enterPeriod,
} = proxyActivities<BillingPeriodActivities>({
  startToCloseTimeout: ACTIVITY_START_TO_CLOSE_MS,
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes' },
});

const { recordPlanChange } = proxyActivities<PlanChangeActivities>({
  startToCloseTimeout: ACTIVITY_START_TO_CLOSE_MS,
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes' },
});

/**
 * The close's one activity (issueAndCharge): draft, finalize, top-up and first charge, each bounded
 * as its own activity was (1 minute; a provider request waits at most activity slots ÷
 * PROVIDER_MAX_REQUESTS_PER_SECOND for its turn, then PROVIDER_TIMEOUT_MS), so their sum fits in
 * 5 minutes. It heartbeats on a timer: a worker that dies mid-close is noticed after a minute.
 */
const closing = proxyActivities<BillingPeriodActivities>({
  startToCloseTimeout: CLOSE_START_TO_CLOSE_MS,
  heartbeatTimeout: CLOSE_HEARTBEAT_MS,
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes' },
});

/**
 * Short reads and writes of one row or a few: local activities, recorded as one marker each in
 * the workflow task that runs them instead of three events and a task of their own. Retried
 * until they succeed (Postgres away: quotas wait for it, as every other activity does).
 */
const local = proxyLocalActivities<BillingPeriodActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 milliseconds', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});

/**
 * The spend path's automatic top-up: a few attempts, so a payment provider that does not answer
 * delays the block by a minute or so, not indefinitely; the next pricing asks again under the same key.
 */
const topUps = proxyActivities<SpendTopUpActivities>({
  startToCloseTimeout: ACTIVITY_START_TO_CLOSE_MS,
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 3 },
});

/** Pricing the open period reads its raw events: longer than a counter read, still one marker in the task. */
const pricing = proxyLocalActivities<BillingPeriodActivities>({
  startToCloseTimeout: ACTIVITY_START_TO_CLOSE_MS,
  retry: { initialInterval: '200 milliseconds', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});

export interface SubscriptionTerms {
  subscriptionId: string;
  customer: string;
  customerId: string;
  planCode: string;
  limits: MeterLimit[];
  /** Progressive billing; absent: none (as in every history recorded before it). */
  spendThresholds?: SpendThresholds;
  /** Subscription start, when billing begins: periods are derived from it unless billingAnchor is given (ISO 8601 UTC). */
  anchor: string;
  /**
   * Periods are derived from this instant instead (ISO 8601 UTC); absent (every history recorded
   * before it): from the start. A start between two of its boundaries makes a first period cut short at the start.
   */
  billingAnchor?: string;
  interval: BillingInterval;
  /** What one period of usage may cost; null or absent: no cap. */
  spendCap?: SpendCap | null;
  /** The plan settles `credit_only`: usage stops when the credit balance is spent (a spend limit). */
  creditOnly?: boolean;
}

/** The spend limit in the period in progress: its last pricing and its state (the hard-limit state machine). */
export interface SpendPeriodState {
  priced: OpenPeriodSpend;
  limit: LimitState;
  /** Soft thresholds of the cap already notified in this period ("80%"). */
  notified: string[];
}

export interface MeterPeriodState {
  usage: string;
  notified: string[];
  limit: LimitState;
}

/** What one run hands to the next: only what the period in progress still needs. */
export interface CarriedState {
  periodStart: string;
  periodEnd: string;
  meters: Record<string, MeterPeriodState>;
  /** Highest sequence seen per usage producer (API process): replays and reordering are ignored. */
  producers: Record<string, number>;
  /** Usage that arrived for the following period while this one waited for late events. */
  early: Record<string, string>;
  /**
   * A cancellation that takes effect in this period or a later one, learnt while an earlier
   * period was closing: this run bills up to it (after its own allowed lateness) and ends there.
   */
  cancelAt?: string;
  /** The subscription that replaces this one once the cancellation is billed. */
  successor?: SubscriptionTerms;
  /** A producer deadline still pending (see BillingPeriodInput.usageReportIntervalMs), ISO 8601. */
  reportDeadline?: string;
  /** The period's interim invoices so far (progressive billing), when there are any. */
  interim?: InterimInvoicing;
  /** The spend limit's state in the period in progress, when it is tracked. */
  spend?: SpendPeriodState;
}

/** Interim invoices issued in the period: how many, and the highest spend threshold one was issued for. */
export interface InterimInvoicing {
  sequence: number;
  threshold: string | null;
}

export interface BillingPeriodInput {
  terms: SubscriptionTerms;
  /** How long after the period end late events are still counted in it. */
  allowedLatenessMs: number;
  /** Waits between declined charge attempts (ISO 8601 durations); see invoice-collection. */
  dunning: string[];
  /**
   * How often producers report usage that is not near a decision point (USAGE_REPORT_INTERVAL_SECONDS;
   * default 300 000). No report for 1.5 times this after the last one: the run re-reads the
   * totals once, in case the last producer died between storing usage and reporting it.
   */
  usageReportIntervalMs?: number;
  carried?: CarriedState;
}

export const DEFAULT_USAGE_REPORT_INTERVAL_MS = 300_000;

/** Width of the time buckets usage is reported in. */
export const USAGE_BUCKET_MS = 1000;

/** Usage accumulated by one producer since its previous report, in buckets of USAGE_BUCKET_MS starting at `at`. */
export interface UsageReport {
  producer: string;
  seq: number;
  deltas: Array<{ meter: string; at: string; quantity: string }>;
}

export const workflowIdFor = (customer: string) => `billing/${customer}`;

/**
 * Histories recorded before this patch ended a canceled subscription with the period being
 * closed (losing usage between that period's end and a later cancellation), drafted an empty
 * invoice for a period that started at or after the cancellation, and started a successor at
 * the period holding the hand-over instead of its first one; they replay as they ran.
 */
const BILL_UNTIL_CANCELLATION = 'bill-until-cancellation';

/**
 * Histories recorded before this patch took usage from the signals' deltas, evaluated and
 * published (a regular activity) after every signal, re-armed the wake-up timer each time and
 * upserted the memo after every evaluation; they replay as they ran. Runs that have it take
 * usage from the counters (readUsageTotals), publish as a local activity only what changed,
 * with the next decision point, and keep timers for real deadlines only.
 */
const USAGE_FROM_COUNTERS = 'usage-from-counters';

/**
 * Histories recorded before this patch took a fresh chain's first period from the time its first
 * workflow task ran; a task delayed past that period's end (a worker outage, a backlog at the
 * 1st of the month) skipped the period and its invoice. Runs that have it take the period in
 * which the execution was started, from its start event (`startTime`; the SDK's `runStartTime`
 * is the first task's time), which every replay reads the same.
 */
const PERIOD_FROM_RUN_START = 'period-from-run-start';

/**
 * Histories recorded before this patch began a subscription that starts later than its workflow
 * in the period holding the workflow's start: a period before the subscription, which was
 * invoiced (base fee included). Runs that have it begin in the subscription start's period, as
 * the API's current period already did. Asked only for such starts, so other runs record nothing.
 */
const FIRST_PERIOD_FROM_START = 'first-period-from-start';

/**
 * Progressive billing: a run whose subscription has spend thresholds prices the open period
 * (an activity) after reads that moved a charged meter, issues an interim invoice when a
 * threshold is reached, and publishes each charged meter's spend decision point. Asked only once
 * a run has thresholds, so runs without them record nothing new.
 */
const PROGRESSIVE_BILLING = 'progressive-billing';

/**
 * Histories recorded before this patch continued into the next period on the same plan. Runs that
 * have it learn from Postgres (enterPeriod) the plan in effect for the next
 * period, so a change scheduled for the period end (a downgrade) takes effect at the boundary.
 */
const SCHEDULED_PLAN_CHANGES = 'scheduled-plan-changes';

/**
 * Runs that have it price the open period through an activity whenever they read the totals, once
 * the subscription has a spend limit, and evaluate, block and publish the spend limit and each
 * charged meter's runway. Histories recorded before it never had a spend cap.
 */
const SPEND_LIMIT = 'spend-limit';

/**
 * Runs that have it buy a credit_only customer's automatic top-up when the open period's priced
 * usage leaves less credit than its threshold (or none), before blocking, and price the period
 * again; histories recorded before it topped up only after an invoice drew credits.
 */
const SPEND_AUTO_TOP_UP = 'spend-auto-top-up';

/**
 * Histories recorded before this patch cancelled and restarted the producer-deadline timer at
 * every report (two events each) and upserted the memo, which held the usage, after every read
 * that moved it (one event). Runs that have it move that timer only once it would fire within
 * half a report interval (once per interval at steady usage, whatever the number of API
 * processes), and keep the memo to what changes rarely: the period and each meter's limit state.
 */
const STEADY_REPORTS = 'steady-reports';

/**
 * Histories recorded before this patch closed a period (and issued an interim invoice) with
 * draftInvoice, finalizeInvoice, a collection child workflow (top-up, charge) and an enterPeriod
 * activity: about six activity tasks, eight workflow tasks and two workflow starts per close, all
 * due at once when customers share an anchor. Runs that have it issue and make the first charge
 * in one activity (issueAndCharge), start the collection workflow only for what that charge left
 * (a decline: dunning from attempt 2), and enter the next period with a local activity.
 */
const ISSUE_AND_CHARGE = 'issue-and-charge';

/**
 * What the close's own collection attempt ended in. `not_charged`: the top-up (`toppedUp` false)
 * or the first charge failed, for good or for now, and the collection workflow takes it from there.
 * `rejected` was the first version's word for a charge that failed for good; histories may hold it.
 */
export type FirstChargeOutcome =
  ChargeAttemptOutcome | { outcome: 'not_charged'; toppedUp: boolean; reason: string } | { outcome: 'rejected'; reason: string };

export const usageReported = defineSignal<[UsageReport]>('usageReported');
/** Sent with signal-with-start: a no-op for the run it started, a hand-over when a new subscription replaces this one. */
export const subscriptionStarted = defineSignal<[SubscriptionTerms]>('subscriptionStarted');
/** `at` is the cancellation time recorded in Postgres, so the final invoice and the database agree on it. */
export const cancelSubscription = defineSignal<[{ at: string }?]>('cancelSubscription');
/** A plan change already recorded in Postgres (the API's and the CLI's path): the run takes the plan's terms at once. */
export interface PlanTerms {
  planCode: string;
  limits: MeterLimit[];
  creditOnly?: boolean;
}
/**
 * A plan change asked of the workflow itself (the Temporal UI): `{"plan": "growth", "effective":
 * "immediately"}`, `effective` optional (default: an upgrade at once, a downgrade at the period
 * end). The run records it in Postgres as the API would, then applies what took effect.
 */
export interface PlanChangeRequest {
  plan: string;
  effective?: ChangeEffect;
}
export const changePlan = defineUpdate<BillingPeriodView, [PlanTerms | PlanChangeRequest]>('changePlan');
/** The customer's credit balance grew (a top-up): a spend limit on credits is priced again at once. */
export const creditsChanged = defineSignal('creditsChanged');
/** New spend thresholds for the period in progress and the following ones; the open period is priced against them at once. */
export const changeSpendThresholds = defineUpdate<BillingPeriodView, [SpendThresholds]>('changeSpendThresholds');
/** A new spend cap (null: none) applies at once: the open period is priced again and the limit re-evaluated. */
export const changeSpendCap = defineUpdate<BillingPeriodView, [{ spendCap: SpendCap | null }]>('changeSpendCap');
export const billingState = defineQuery<BillingPeriodView>('state');

export interface BillingPeriodView {
  subscriptionId: string;
  planCode: string;
  period: { start: string; end: string };
  meters: Record<string, MeterPeriodState>;
  canceled: boolean;
  /** The end of what this run bills: the period end, or the cancellation time. */
  billedUntil: string;
  /** Interim invoices issued in this period (progressive billing). */
  interim: InterimInvoicing;
  /** The spend limit, when the subscription has one. */
  spend?: SpendPeriodState;
}

export async function billingPeriodWorkflow(input: BillingPeriodInput): Promise<void> {
  const run = new BillingPeriodRun(input);
  run.listen();
  run.listenForSpendCap();
  await run.meterUntilClose();
  await run.close();
}

/** One run's state: the period it bills and what signals and updates have told it so far. */
class BillingPeriodRun {
  private terms: SubscriptionTerms;
  private readonly period: { start: Date; end: Date };
  private readonly meters: Record<string, MeterPeriodState>;
  private readonly producers: Record<string, number>;
  private readonly early: Record<string, Decimal>;
  /** Producers heard in this run: the only ones whose sequences the next period still needs. */
  private readonly heard = new Set<string>();
  /** Per meter, when the counters were last read for its usage (published with it, see publishQuota). */
  private readonly countedAt: Record<string, string> = {};
  private dirty: boolean;
  /** When the subscription ends (epoch ms), once it is canceled; it may lie beyond this period. */
  private cancelAt: number | undefined;
  private canceled: boolean;
  /** Billing of this period ends here: the period end, or the cancellation time when that comes first. */
  private billedUntil: Date;
  /** Set once the invoice is being drafted: its end is fixed from then on. */
  private closing = false;
  /** A subscription that replaces this one once it is closed. */
  private successor: SubscriptionTerms | undefined;
  /** What was last published per meter for quota checks, so an unchanged state is not sent again. */
  private readonly published: Record<string, string> = {};
  /** Usage from the counters (USAGE_FROM_COUNTERS), or from the signals' deltas in older histories. */
  private readonly fromCounters: boolean;
  /** A report arrived since the totals were last read. */
  private readDue = false;
  /** When to re-read if no report arrives before (epoch ms): the last producer may be gone. */
  private reportDeadline: number | undefined;
  /** The wake-up timer in force, kept while its deadline stays the next one. */
  private timer: { at: number; scope: CancellationScope } | undefined;
  /** Fewer events per report (STEADY_REPORTS): a timer moved lazily, no usage in the memo. */
  private readonly steadyReports: boolean;
  private woke = false;
  /** What the memo and the current details last said, so they are only set when that changes. */
  private shown: { memo: string; details: string } | undefined;
  /** Whether this run bills progressively (PROGRESSIVE_BILLING), asked once it has spend thresholds. */
  private progressive: boolean | undefined;
  private interim: InterimInvoicing;
  /**
   * The last pricing of the open period: the counters of the charged meters it saw (a read that
   * moves one prices again) and the next threshold's decision point per charged meter. Unset: price at the next read.
   */
  private thresholdPricing:
    { counters: Record<string, string | undefined>; next: string | null; decisionPoints: Record<string, string | null> } | undefined;
  /** Meters without limits published only for their spend decision points (thresholds, spend limit). */
  private readonly spendOnlyMeters = new Set<string>();
  /** The spend limit, once the subscription has one in this period (SPEND_LIMIT). */
  private spend: SpendPeriodState | undefined;
  /** The credit balance this run last asked an automatic top-up for: asked once per balance. */
  private toppedUpFor: string | undefined;

  constructor(private readonly input: BillingPeriodInput) {
    const carried = input.carried;
    this.terms = input.terms;
    this.period = carried
      ? { start: new Date(carried.periodStart), end: new Date(carried.periodEnd) }
      : billedPeriodContaining(scheduleOf(this.terms), this.firstRunInstant());
    this.meters = carried?.meters ?? {};
    this.producers = carried?.producers ?? {};
    this.early = Object.fromEntries(Object.entries(carried?.early ?? {}).map(([m, q]) => [m, new Decimal(q)]));
    this.dirty = Object.keys(this.meters).length > 0;
    this.cancelAt = carried?.cancelAt === undefined ? undefined : Date.parse(carried.cancelAt);
    this.canceled = this.cancelAt !== undefined;
    this.billedUntil = this.cancelAt === undefined ? this.period.end : this.billedPart(this.cancelAt);
    this.successor = carried?.successor;
    this.interim = carried?.interim ?? { sequence: 0, threshold: null };
    this.spend = carried?.spend;
    this.fromCounters = patched(USAGE_FROM_COUNTERS);
    if (this.fromCounters) {
      this.reportDeadline = carried?.reportDeadline === undefined ? undefined : Date.parse(carried.reportDeadline);
      this.early = {};
    }
    this.steadyReports = this.fromCounters && patched(STEADY_REPORTS);
  }

  /** The instant whose period a run with nothing carried bills. */
  private firstRunInstant(): Date {
    const started = patched(PERIOD_FROM_RUN_START) ? workflowInfo().startTime : new Date();
    const start = Date.parse(this.terms.anchor);
    return start > started.getTime() && patched(FIRST_PERIOD_FROM_START) ? new Date(start) : started;
  }

  /** Registers the signal, query and update handlers (buffered signals are applied as each is set). */
  listen(): void {
    setHandler(usageReported, (report) => this.receiveUsage(report));
    setHandler(cancelSubscription, (input) => this.cancel(input ? Date.parse(input.at) : Date.now()));
    setHandler(subscriptionStarted, (next) => {
      if (next.subscriptionId === this.terms.subscriptionId) return;
      this.successor = next;
      this.cancel(Date.parse(next.anchor));
    });
    setHandler(billingState, () => this.view());
    // With usage from the counters, the first read shows them at once.
    if (!this.fromCounters) this.showDetails();
    setHandler(
      changePlan,
      async (change) => {
        if (!isPlanChangeRequest(change)) return this.applyPlan(change);
        // No patch needed: the validator refused a change without `planCode` before this path
        // existed, so no earlier history holds one; the terms path runs the commands it always ran.
        const recorded = await recordPlanChange({
          subscriptionId: this.terms.subscriptionId,
          plan: change.plan,
          ...(change.effective === undefined ? {} : { effective: change.effective }),
          at: new Date().toISOString(),
        });
        // Scheduled for the period end: the plan in force is unchanged and enterPeriod applies it then.
        if (recorded.planCode === this.terms.planCode) return this.view();
        return this.applyPlan({ planCode: recorded.planCode, limits: recorded.limits, creditOnly: recorded.creditOnly });
      },
      {
        // Refused here, a malformed change never reaches the history; an unknown plan is refused by
        // recordPlanChange (the catalog is in Postgres), which then records nothing.
        validator: (change) => {
          if (typeof change !== 'object' || change === null) throw new TypeError(PLAN_CHANGE_SHAPE);
          if ('plan' in change) {
            if (typeof change.plan !== 'string' || change.plan === '' || 'planCode' in change) throw new TypeError(PLAN_CHANGE_SHAPE);
            if (change.effective !== undefined && !isChangeEffect(change.effective)) throw new TypeError(PLAN_CHANGE_SHAPE);
            return;
          }
          if (!change.planCode) throw new Error('planCode is required');
          if (!Array.isArray(change.limits)) throw new Error('limits must be an array');
        },
      },
    );
    setHandler(
      changeSpendThresholds,
      (spendThresholds) => {
        this.terms = { ...this.terms, spendThresholds };
        // The next read prices the open period against them (and publishes their decision points).
        this.thresholdPricing = undefined;
        this.readDue = true;
        return this.view();
      },
      {
        // Exactly what the API's schema outputs: a malformed update (from the Temporal UI, say) is
        // refused here rather than failing the run when the open period is priced against it.
        validator: (thresholds) => {
          if (!isSpendThresholds(thresholds))
            throw new TypeError('spend thresholds must be {"amounts": ["500.00", …], "every": "1000.00" or null}, amounts above 0');
        },
      },
    );
  }

  /** The run bills and limits on the plan from now on (the invoice splits the period at the recorded change). */
  private async applyPlan({ planCode, limits, creditOnly }: PlanTerms): Promise<BillingPeriodView> {
    this.terms = { ...this.terms, planCode, limits, ...(creditOnly === undefined ? {} : { creditOnly }) };
    // Another tariff moves the spend decision points: the next read prices again.
    if (this.progressiveBilling()) {
      this.thresholdPricing = undefined;
      this.readDue = true;
    }
    // Other charges, other prices: the spend is priced again on the new plan. A plan that
    // settles credit_only starts the spend limit at once (updates sent before creditOnly
    // existed do not carry it, and replay as they ran).
    if (this.spend || (creditOnly === true && this.spendTracked())) await this.priceSpend();
    await this.evaluateLimits();
    return this.view();
  }

  /** Registers the spend-cap update (a separate step so `listen` stays readable). */
  listenForSpendCap(): void {
    setHandler(creditsChanged, () => {
      if (this.spendTracked()) this.readDue = true;
    });
    setHandler(
      changeSpendCap,
      async ({ spendCap }) => {
        this.terms = { ...this.terms, spendCap };
        if (this.spendTracked()) await this.priceSpend();
        await this.evaluateLimits();
        return this.view();
      },
      {
        validator: ({ spendCap }) => {
          if (spendCap !== null && !isSpendCap(spendCap))
            throw new TypeError(
              'spendCap must be null or {"amount": "250.00", "grace_period"?: "PT1H", "soft_thresholds"?: [{"percent": 80}]}',
            );
        },
      },
    );
  }

  /**
   * Evaluates limits as usage arrives and grace periods end, until the close is due; continues as
   * new with the period in progress when the history grows too long.
   */
  async meterUntilClose(): Promise<void> {
    if (this.fromCounters) return this.meterFromCounters();
    while (Date.now() < this.closeAt()) {
      const wakeAt = Math.min(this.closeAt(), this.nextGraceDeadline());
      const wasCanceled = this.canceled;
      await condition(
        () => this.dirty || this.canceled !== wasCanceled || workflowInfo().continueAsNewSuggested,
        Math.max(1, wakeAt - Date.now()),
      );
      if (this.dirty || Date.now() >= this.nextGraceDeadline()) await this.evaluateLimits();
      if (workflowInfo().continueAsNewSuggested && !this.canceled) {
        await condition(allHandlersFinished);
        await continueAsNew<typeof billingPeriodWorkflow>({ ...this.input, terms: this.terms, carried: this.carry() });
      }
    }
  }

  /**
   * The run with usage from the counters: totals are read at the start (publishing every limited
   * meter's state, so producers learn its decision points), after reports (one read per workflow
   * task however many reports it brings), and at a producer deadline. The only timer is the next
   * real deadline: the close, a grace period's end or the producer deadline (or, with
   * STEADY_REPORTS, an earlier producer deadline still in force: see wakeAt).
   */
  private async meterFromCounters(): Promise<void> {
    if (Date.now() < this.closeAt()) await this.refreshUsage();
    while (Date.now() < this.closeAt()) {
      const wasCanceled = this.canceled;
      this.wakeAt(Math.min(this.closeAt(), this.nextGraceDeadline(), this.reportDeadline ?? Infinity));
      // A canceled run closes soon and does not continue as new mid-period: the suggestion alone does not wake it.
      const suggested = () => workflowInfo().continueAsNewSuggested && !this.canceled;
      await condition(() => this.readDue || this.dirty || this.woke || this.canceled !== wasCanceled || suggested());
      this.woke = false;
      if (this.reportDeadline !== undefined && Date.now() >= this.reportDeadline) {
        // Silence after usage: re-read once, then wait for the next report.
        this.reportDeadline = undefined;
        this.readDue = true;
      }
      if (this.readDue) await this.refreshUsage();
      else if (this.dirty || Date.now() >= this.nextGraceDeadline()) await this.evaluateLimits();
      if (workflowInfo().continueAsNewSuggested && !this.canceled) {
        await condition(allHandlersFinished);
        await continueAsNew<typeof billingPeriodWorkflow>({ ...this.input, terms: this.terms, carried: this.carry() });
      }
    }
  }

  /**
   * One timer, for the next deadline: replaced when that deadline moves (with STEADY_REPORTS, when
   * it moves later, only once the timer would fire within half a report interval); sets `woke` when
   * it fires.
   */
  private wakeAt(at: number): void {
    if (this.timer?.at === at) return;
    // Each report moves the producer deadline later. The timer in force, earlier, stays while the
    // next slow report can still move it before it fires: a cancel and a start per report interval,
    // not per report. Firing early costs a workflow task, after which the loop sets the real deadline.
    if (this.steadyReports && this.timer && this.timer.at < at && this.timer.at - Date.now() > this.reportIntervalMs() / 2) return;
    this.timer?.scope.cancel();
    const timer = { at, scope: new CancellationScope() };
    this.timer = timer;
    timer.scope
      .run(() => sleep(Math.max(1, at - Date.now())))
      .then(
        () => {
          if (this.timer !== timer) return;
          this.timer = undefined;
          this.woke = true;
        },
        () => undefined, // canceled: a later deadline replaced it
      );
  }

  /** Takes the period's totals from the counters as the usage, then evaluates the limits. */
  private async refreshUsage(): Promise<void> {
    this.readDue = false;
    const codes = [
      ...new Set([
        ...this.terms.limits.map((l) => l.meter),
        ...Object.keys(this.meters),
        ...Object.keys(this.thresholdPricing?.decisionPoints ?? {}),
      ]),
    ];
    // Workflow time, before the read runs: the totals count everything stored before it.
    const readAt = new Date().toISOString();
    const totals = await local.readUsageTotals({
      customerId: this.terms.customerId,
      meters: codes.map((code) => ({ code })),
      periodStart: this.period.start.toISOString(),
      periodEnd: this.period.end.toISOString(),
    });
    for (const code of codes) {
      const total = totals[code];
      if (total === undefined) continue;
      this.meterState(code).usage = total;
      this.countedAt[code] = readAt;
    }
    if (this.progressiveBilling() && this.spendMayHaveMoved(totals)) await this.checkSpend(totals);
    if (this.spendTracked()) await this.priceSpend();
    await this.evaluateLimits();
  }

  /**
   * Whether the open period must be priced again: never priced in this run, or a charged meter
   * moved (or cannot be read from the counters). Once the period (or the subscription) has ended,
   * its close bills the rest: no interim invoice during the allowed lateness.
   */
  private spendMayHaveMoved(totals: Record<string, string>): boolean {
    if (this.closing || this.canceled || Date.now() >= this.billedUntil.getTime()) return false;
    if (!this.thresholdPricing) return true;
    if (this.thresholdPricing.next === null) return false;
    return Object.keys(this.thresholdPricing.decisionPoints).some(
      (m) => totals[m] === undefined || totals[m] !== this.thresholdPricing!.counters[m],
    );
  }

  /** Prices the open period so far; a threshold reached above the last one invoiced issues an interim invoice. */
  private async checkSpend(totals: Record<string, string>): Promise<void> {
    const until = new Date();
    const priced = await pricing.priceOpenPeriod({
      subscriptionId: this.terms.subscriptionId,
      customerId: this.terms.customerId,
      planCode: this.terms.planCode,
      periodStart: this.period.start.toISOString(),
      until: until.toISOString(),
      thresholds: this.terms.spendThresholds!,
    });
    this.thresholdPricing = {
      counters: Object.fromEntries(Object.keys(priced.decisionPoints).map((m) => [m, totals[m]])),
      next: priced.next,
      decisionPoints: priced.decisionPoints,
    };
    const { reached } = priced;
    const above = reached !== null && (this.interim.threshold === null || new Decimal(reached).gt(this.interim.threshold));
    if (above) await this.issueInterimInvoice(reached, until);
  }

  /**
   * Interim invoice number n+1 for [period start, until): drafted, finalized and collected like the
   * period's own, before the run reads again, so the period close (which runs after the last read)
   * always finds it finalized and deducts it. The draft is keyed by (customer, period start,
   * 'interim', sequence), so a retry, a replay or a reset converges on the same invoice.
   */
  private async issueInterimInvoice(threshold: string, until: Date): Promise<void> {
    this.interim = { sequence: this.interim.sequence + 1, threshold };
    const draft = {
      subscriptionId: this.terms.subscriptionId,
      customerId: this.terms.customerId,
      planCode: this.terms.planCode,
      periodStart: this.period.start.toISOString(),
      until: until.toISOString(),
      sequence: this.interim.sequence,
      threshold,
    };
    if (patched(ISSUE_AND_CHARGE)) {
      await this.issueAndCollect({ interim: draft });
    } else {
      const { invoiceId } = await draftInterimInvoice(draft);
      await finalizeInvoice({ invoiceId });
      await startInvoiceCollection(invoiceId, this.input.dunning);
    }
    this.showDetails();
  }

  /** Issues and charges the invoice in one activity; a collection workflow takes over only what the first attempt left. */
  private async issueAndCollect(invoice: Parameters<BillingPeriodActivities['issueAndCharge']>[0]): Promise<void> {
    const { invoiceId, firstAttempt } = await closing.issueAndCharge(invoice);
    if (firstAttempt.outcome === 'declined') {
      await startInvoiceCollection(invoiceId, this.input.dunning, { declined: { attempt: 1, declineCode: firstAttempt.declineCode } });
    } else if (firstAttempt.outcome === 'not_charged') {
      await startInvoiceCollection(invoiceId, this.input.dunning, firstAttempt.toppedUp ? { declined: null } : undefined);
    } else if (firstAttempt.outcome === 'rejected') {
      await startInvoiceCollection(invoiceId, this.input.dunning, { declined: null });
    }
  }

  /** Progressive billing applies when the subscription has spend thresholds and the run has the patch (asked once, lazily). */
  private progressiveBilling(): boolean {
    if (!this.fromCounters || !hasSpendThresholds(this.terms.spendThresholds)) return false;
    return (this.progressive ??= patched(PROGRESSIVE_BILLING));
  }

  /** The spend decision point of a charged meter, when progressive billing has one. */
  private thresholdDecision(meter: string): string | null {
    return this.thresholdPricing?.decisionPoints[meter] ?? null;
  }

  /**
   * Whether this run prices the open period for a spend limit: once the subscription has one (a
   * spend cap, or a plan settling `credit_only`: the credit balance), and for the rest of the
   * period once it had one, so removing the cap lifts its block.
   */
  private spendTracked(): boolean {
    if (this.spend) return true;
    return (this.terms.spendCap != null || this.terms.creditOnly === true) && patched(SPEND_LIMIT);
  }

  /** Prices the open period's usage (an activity: pricing never runs in workflow code). */
  private async priceSpend(): Promise<void> {
    const priced = await local.priceSpend({
      customerId: this.terms.customerId,
      planCode: this.terms.planCode,
      spendCap: this.terms.spendCap ?? null,
      notified: this.spend?.notified ?? [],
      periodStart: this.period.start.toISOString(),
      periodEnd: this.period.end.toISOString(),
    });
    this.spend = { priced, limit: this.spend?.limit ?? { status: 'ok' }, notified: this.spend?.notified ?? [] };
  }

  /** Invoices the period, lifts its blocks and continues with whatever follows it. */
  async close(): Promise<void> {
    this.closing = true;
    // The last reports may not have come (a producer died): the quota state ends on the truth.
    if (this.fromCounters) await this.refreshUsage();
    await this.issueInvoice();
    await this.unblockMeters();
    await condition(allHandlersFinished);
    await this.continueAfterClose();
  }

  private receiveUsage(report: UsageReport): void {
    if (report.seq <= (this.producers[report.producer] ?? -1)) return;
    this.producers[report.producer] = report.seq;
    this.heard.add(report.producer);
    if (this.fromCounters) {
      // The deltas only say which meters moved; the read that follows says by how much.
      for (const { meter, at } of report.deltas) {
        const t = Date.parse(at);
        if (t + USAGE_BUCKET_MS > this.period.start.getTime() && t < this.period.end.getTime()) this.meterState(meter);
      }
      this.readDue = true;
      this.reportDeadline = Date.now() + 1.5 * this.reportIntervalMs();
      return;
    }
    for (const delta of report.deltas) {
      const { meter, quantity } = delta;
      const at = Date.parse(delta.at);
      // Entirely before the period: its run has closed; the invoice's late-event policy takes it from
      // the database. A bucket straddling the start counts here, so quotas never miss the first second.
      if (at + USAGE_BUCKET_MS <= this.period.start.getTime()) continue;
      if (at >= this.period.end.getTime()) {
        this.early[meter] = (this.early[meter] ?? new Decimal(0)).plus(quantity);
        continue;
      }
      const state = this.meterState(meter);
      state.usage = new Decimal(state.usage).plus(quantity).toFixed();
    }
    this.dirty = true;
  }

  private cancel(at: number): void {
    if (this.canceled) return;
    this.canceled = true;
    this.cancelAt = at;
    // Learnt while the invoice is drafted: that invoice covers the period as drafted, and a
    // cancellation after the period end is billed by the next run (see continueAfterClose).
    if (!this.closing) this.billedUntil = this.billedPart(at);
    this.showDetails();
  }

  /** Applies the quota policy to every limited meter; notifies and (un)blocks as it says. */
  private async evaluateLimits(): Promise<void> {
    this.dirty = false;
    const now = new Date();
    // The spend limit first: whether it is reached decides what the meters publish as their next decision.
    if (this.spend) await this.evaluateSpend(this.spend, now);
    for (const limit of this.terms.limits) await this.evaluateMeter(limit, now);
    await this.publishSpendOnlyMeters(now);
    this.showDetails();
  }

  /** Applies the spend limit: reached, then grace, then blocked, like a `block` hard limit; (un)blocks the charged meters. */
  private async evaluateSpend(spend: SpendPeriodState, now: Date, mayTopUp = true): Promise<void> {
    // One top-up per evaluation: the next pricing decides whether another one is due.
    if (mayTopUp && (await this.topUpSpend(spend))) return this.evaluateSpend(this.spend!, now, false);
    const wasBlocked = spend.limit.status === 'blocked';
    const cap = this.terms.spendCap;
    const { state, newlyCrossed } = evaluateSpendLimit(
      {
        available: spend.priced.available,
        ...(cap?.grace_period === undefined ? {} : { gracePeriod: cap.grace_period }),
        softThresholds: cap?.soft_thresholds?.map((t) => t.percent) ?? [],
      },
      { spent: spend.priced.spent, state: spend.limit, notified: spend.notified },
      now,
    );
    spend.limit = state;
    for (const crossing of newlyCrossed) {
      // Recorded first, as for meter thresholds, so a concurrent evaluation cannot notify twice.
      spend.notified.push(crossing.key);
      await notifySpendThreshold({
        subscriptionId: this.terms.subscriptionId,
        customer: this.terms.customer,
        periodStart: this.period.start.toISOString(),
        threshold: crossing.key,
        spent: spend.priced.spent,
        cap: spend.priced.available!,
        currency: spend.priced.currency,
      });
    }
    const blocked = spend.limit.status === 'blocked';
    if (blocked !== wasBlocked) {
      await setSpendBlock({
        customerId: this.terms.customerId,
        meters: spend.priced.meters,
        blocked,
        periodEnd: this.period.end.toISOString(),
      });
    }
  }

  /**
   * A credit_only customer's automatic top-up (SPEND_AUTO_TOP_UP), when the credit left after the
   * priced usage is below its threshold or gone: bought before any block, then the period is
   * priced again. True when it was topped up. A top-up that failed is asked again at the next
   * pricing; declined or not needed, not before the balance moves.
   */
  private async topUpSpend(spend: SpendPeriodState): Promise<boolean> {
    const { priced } = spend;
    const threshold = priced.autoTopUpBelow;
    if (priced.source !== 'credits' || priced.available === null || threshold === undefined) return false;
    if (!spendTopUpDue(priced.available, priced.spent, threshold) || this.toppedUpFor === priced.available || !patched(SPEND_AUTO_TOP_UP))
      return false;
    this.toppedUpFor = priced.available;
    try {
      const topUp = await topUps.autoTopUpForSpend({
        customerId: this.terms.customerId,
        customer: this.terms.customer,
        currency: priced.currency,
        subscriptionId: this.terms.subscriptionId,
        periodStart: this.period.start.toISOString(),
        available: priced.available,
        spent: priced.spent,
      });
      if (topUp.outcome !== 'not_needed') log.info('automatic credit top-up for the open period', { ...topUp });
      if (topUp.outcome !== 'topped_up') return false;
    } catch (err) {
      if (isCancellation(err)) throw err;
      this.toppedUpFor = undefined;
      log.warn('automatic credit top-up for the open period failed', { error: err instanceof Error ? err.message : String(err) });
      return false;
    }
    await this.priceSpend();
    return true;
  }

  /**
   * A meter's spend decision point while the spend limit is not reached: the usage at which the
   * next soft threshold or the cap is reached (a threshold just notified falls back to the cap
   * until the next pricing); null once the limit is reached (the grace timer decides from there),
   * or when no usage of the meter gets there. Undefined without a spend limit.
   */
  private spendDecision(meter: string): string | null | undefined {
    if (!this.spend) return undefined;
    if (this.spend.limit.status !== 'ok') return null;
    const { nextDecision, runway, usage } = this.spend.priced;
    const next = nextDecision[meter] ?? null;
    return next !== null && new Decimal(next).gt(usage[meter] ?? '0') ? next : (runway[meter] ?? null);
  }

  private async evaluateMeter(limit: MeterLimit, now: Date): Promise<void> {
    const state = this.meterState(limit.meter);
    const result = evaluateLimit(limit, { usage: state.usage, notified: state.notified, state: state.limit }, now);
    const wasBlocked = state.limit.status === 'blocked';
    state.limit = result.state;
    for (const crossing of result.newlyCrossed) {
      // Recorded before the activity runs so a concurrent evaluation cannot notify twice;
      // the activity itself is retried until it succeeds and is idempotent per threshold.
      state.notified.push(crossing.key);
      await notifyThreshold({
        subscriptionId: this.terms.subscriptionId,
        customer: this.terms.customer,
        meter: limit.meter,
        periodStart: this.period.start.toISOString(),
        threshold: crossing.key,
        usage: state.usage,
      });
    }
    const blocked = result.state.status === 'blocked';
    if (blocked !== wasBlocked) {
      await setEntitlement({ customerId: this.terms.customerId, meter: limit.meter, blocked, periodEnd: this.period.end.toISOString() });
    }
    const spend = this.spend ? { spendRunway: this.spend.priced.runway[limit.meter] ?? null } : {};
    const quota = {
      usage: state.usage,
      hardLimit: limit.hard_limit ?? null,
      state: state.limit.status,
      notified: [...state.notified],
      ...spend,
    };
    const decision = lowerDecision(
      lowerDecision(nextDecision(limit, state), this.thresholdDecision(limit.meter)),
      this.spendDecision(limit.meter) ?? null,
    );
    // Older histories published without the decision point: the same state, the same publishes.
    const signature = JSON.stringify(this.fromCounters ? { ...quota, nextDecision: decision } : quota);
    if (this.published[limit.meter] !== signature) {
      this.published[limit.meter] = signature;
      await (this.fromCounters ? local.publishQuota : publishQuota)({
        customerId: this.terms.customerId,
        meter: limit.meter,
        ...quota,
        nextDecision: decision,
        periodEnd: this.period.end.toISOString(),
        asOf: now.toISOString(),
        // Not part of the signature: a read that changed nothing a reader sees publishes nothing.
        ...(this.countedAt[limit.meter] ? { countedAt: this.countedAt[limit.meter] } : {}),
      });
    }
  }

  /**
   * Charged meters without limits carry spend decision points only (the next spend threshold of
   * progressive billing, the spend limit's runway): published like a limited meter's state (no
   * hard limit, state ok), so API processes report at once near one. A meter published so keeps
   * being published (null once no decision is left).
   */
  private async publishSpendOnlyMeters(now: Date): Promise<void> {
    const limited = new Set(this.terms.limits.map((l) => l.meter));
    const priced = this.spend?.priced;
    for (const meter of [...Object.keys(this.thresholdPricing?.decisionPoints ?? {}), ...Object.keys(priced?.usage ?? {})]) {
      if (!limited.has(meter)) this.spendOnlyMeters.add(meter);
    }
    for (const meter of this.spendOnlyMeters) {
      if (limited.has(meter)) continue;
      const quota = {
        usage: priced?.usage[meter] ?? this.meterState(meter).usage,
        hardLimit: null,
        state: 'ok' as const,
        notified: [],
        nextDecision: lowerDecision(this.thresholdDecision(meter), this.spendDecision(meter) ?? null),
        ...(priced ? { spendRunway: priced.runway[meter] ?? null } : {}),
      };
      const signature = JSON.stringify(quota);
      if (this.published[meter] === signature) continue;
      this.published[meter] = signature;
      await local.publishQuota({
        customerId: this.terms.customerId,
        meter,
        ...quota,
        periodEnd: this.period.end.toISOString(),
        asOf: now.toISOString(),
      });
    }
  }

  private async issueInvoice(): Promise<void> {
    // A cancellation at or before the period start (recorded for an earlier period, and learnt
    // late) leaves nothing of this period to bill: no invoice, and no base fee for it.
    if (this.billedUntil > this.period.start || !patched(BILL_UNTIL_CANCELLATION)) {
      const draft = {
        subscriptionId: this.terms.subscriptionId,
        customerId: this.terms.customerId,
        planCode: this.terms.planCode,
        periodStart: this.period.start.toISOString(),
        periodEnd: this.billedUntil.toISOString(),
      };
      if (patched(ISSUE_AND_CHARGE)) return this.issueAndCollect({ period: draft });
      const { invoiceId } = await draftInvoice(draft);
      await finalizeInvoice({ invoiceId });
      // Collection (charge, dunning) outlives this run, so the next period starts at once.
      await startInvoiceCollection(invoiceId, this.input.dunning);
    }
  }

  private async unblockMeters(): Promise<void> {
    if (this.spend?.limit.status === 'blocked') {
      await setSpendBlock({
        customerId: this.terms.customerId,
        meters: this.spend.priced.meters,
        blocked: false,
        periodEnd: this.period.end.toISOString(),
      });
    }
    for (const limit of this.terms.limits) {
      if (this.meters[limit.meter]?.limit.status === 'blocked') {
        await setEntitlement({
          customerId: this.terms.customerId,
          meter: limit.meter,
          blocked: false,
          periodEnd: this.period.end.toISOString(),
        });
      }
    }
  }

  /** Continues as new with the next period, the rest of a cancellation or the successor; or ends, canceled. */
  private async continueAfterClose(): Promise<void> {
    const nextRun = this.nextRun();
    // Canceled after this period's end (learnt during its lateness, a pending close or a worker
    // outage): the following periods up to the cancellation are billed too, each after its own
    // allowed lateness, by the next run(s), which then end or hand over to the successor.
    if (this.cancelAt !== undefined && this.cancelAt > this.period.end.getTime() && patched(BILL_UNTIL_CANCELLATION)) {
      await continueAsNew<typeof billingPeriodWorkflow>({
        ...this.input,
        terms: this.terms,
        carried: { ...nextRun, cancelAt: new Date(this.cancelAt).toISOString(), ...(this.successor ? { successor: this.successor } : {}) },
      });
    }
    if (this.successor) await this.handOver(this.successor, nextRun.producers);
    if (this.canceled) return;

    if (patched(SCHEDULED_PLAN_CHANGES)) {
      // One row read and perhaps a plan change applied: a marker in the close's last workflow task.
      const { planCode, limits, creditOnly } = await (patched(ISSUE_AND_CHARGE) ? local.enterPeriod : enterPeriod)({
        subscriptionId: this.terms.subscriptionId,
        periodStart: nextRun.periodStart,
      });
      // A plan that settles credit_only from this period on makes the credit balance its spend limit.
      this.terms = { ...this.terms, planCode, limits, ...(creditOnly === undefined ? {} : { creditOnly }) };
    }
    await continueAsNew<typeof billingPeriodWorkflow>({ ...this.input, terms: this.terms, carried: nextRun });
  }

  /** The successor bills from its own first period, however late the hand-over comes. */
  private async handOver(successor: SubscriptionTerms, producers: Record<string, number>): Promise<void> {
    const first = billedPeriodContaining(scheduleOf(successor), new Date(successor.anchor));
    const carried: CarriedState | undefined = patched(BILL_UNTIL_CANCELLATION)
      ? { periodStart: first.start.toISOString(), periodEnd: first.end.toISOString(), meters: {}, producers, early: {} }
      : undefined;
    const interval = this.input.usageReportIntervalMs;
    await continueAsNew<typeof billingPeriodWorkflow>({
      terms: successor,
      allowedLatenessMs: this.input.allowedLatenessMs,
      dunning: this.input.dunning,
      ...(interval === undefined ? {} : { usageReportIntervalMs: interval }),
      ...(carried ? { carried } : {}),
    });
  }

  /** What the next period starts with: the usage that arrived early for it and the producers heard here. */
  private nextRun(): CarriedState {
    const next = nextBilledPeriod(scheduleOf(this.terms), this.period);
    return {
      periodStart: next.start.toISOString(),
      periodEnd: next.end.toISOString(),
      meters: Object.fromEntries(
        Object.entries(this.early).map(([m, q]) => [m, { usage: q.toFixed(), notified: [], limit: { status: 'ok' } }]),
      ),
      producers: Object.fromEntries(Object.entries(this.producers).filter(([p]) => this.heard.has(p))),
      early: {},
      ...this.carriedDeadline(),
    };
  }

  private carriedDeadline(): Pick<CarriedState, 'reportDeadline'> {
    return this.reportDeadline === undefined ? {} : { reportDeadline: new Date(this.reportDeadline).toISOString() };
  }

  /** The period in progress, for a run that continues it. */
  private carry(): CarriedState {
    return {
      periodStart: this.period.start.toISOString(),
      periodEnd: this.period.end.toISOString(),
      meters: this.meters,
      producers: this.producers,
      early: Object.fromEntries(Object.entries(this.early).map(([m, q]) => [m, q.toFixed()])),
      ...this.carriedDeadline(),
      ...(this.interim.sequence > 0 ? { interim: this.interim } : {}),
      ...(this.spend ? { spend: this.spend } : {}),
    };
  }

  // A cancellation is billed at once, not at the boundary: the final invoice covers
  // [start, cancellation) and is issued after the allowed lateness, like any other close.
  private closeAt(): number {
    return this.billedUntil.getTime() + this.input.allowedLatenessMs;
  }

  /** The next moment something happens without a signal: a grace period ending. */
  private nextGraceDeadline(): number {
    const limits = [...Object.values(this.meters).map((m) => m.limit), ...(this.spend ? [this.spend.limit] : [])];
    return Math.min(...limits.map((l) => (l.status === 'over_limit_in_grace' ? Date.parse(l.grace_ends_at) : Infinity)));
  }

  /** This period's share of billing: up to the cancellation, clamped to [start, end]. */
  private billedPart(at: number): Date {
    return new Date(Math.min(this.period.end.getTime(), Math.max(this.period.start.getTime(), at)));
  }

  private reportIntervalMs(): number {
    return this.input.usageReportIntervalMs ?? DEFAULT_USAGE_REPORT_INTERVAL_MS;
  }

  private meterState(meter: string): MeterPeriodState {
    return (this.meters[meter] ??= { usage: '0', notified: [], limit: { status: 'ok' } });
  }

  private view(): BillingPeriodView {
    return {
      subscriptionId: this.terms.subscriptionId,
      planCode: this.terms.planCode,
      period: { start: this.period.start.toISOString(), end: this.period.end.toISOString() },
      meters: this.meters,
      canceled: this.canceled,
      billedUntil: this.billedUntil.toISOString(),
      interim: this.interim,
      ...(this.spend ? { spend: this.spend } : {}),
    };
  }

  /** What the Temporal UI shows for this run at a glance (memo and current details). */
  private showDetails(): void {
    const period = this.view().period;
    // The usage moves at every report: it is in the current details (no history event), not the memo.
    const memo = this.steadyReports
      ? { period, limitState: Object.fromEntries(Object.entries(this.meters).map(([m, s]) => [m, s.limit.status])) }
      : { period, usage: Object.fromEntries(Object.entries(this.meters).map(([m, s]) => [m, s.usage])) };
    const details = [
      `**${this.terms.customer}** on plan \`${this.terms.planCode}\`${this.canceled ? ' (canceled)' : ''}`,
      `Period ${this.period.start.toISOString()} → ${this.period.end.toISOString()}`,
      ...Object.entries(this.meters).map(([m, s]) => `- ${m}: ${s.usage} (${s.limit.status}; notified ${s.notified.join(', ') || 'none'})`),
      ...(this.interim.sequence > 0
        ? [`Interim invoices: ${this.interim.sequence} (last at spend threshold ${this.interim.threshold})`]
        : []),
    ].join('\n');
    if (!this.fromCounters) {
      upsertMemo(memo);
      setCurrentDetails(details);
      return;
    }
    // Each memo upsert is a history event: only when what the UI shows changed.
    const shown = { memo: JSON.stringify(memo), details };
    if (shown.memo !== this.shown?.memo) upsertMemo(memo);
    if (shown.details !== this.shown?.details) setCurrentDetails(details);
    this.shown = shown;
  }
}

const PLAN_CHANGE_SHAPE = 'a plan change is {"plan": "growth", "effective"?: "immediately" or "period_end"}';

const isPlanChangeRequest = (change: PlanTerms | PlanChangeRequest): change is PlanChangeRequest => 'plan' in change;

/** The lower of two decision points (null: none). */
function lowerDecision(a: string | null, b: string | null): string | null {
  if (a === null || b === null) return a ?? b;
  return Decimal.min(a, b).toFixed();
}

/** Periods from the billing anchor (the start when none was given), billing from the start. */
function scheduleOf(terms: SubscriptionTerms): BillingSchedule {
  return { start: new Date(terms.anchor), billingAnchor: new Date(terms.billingAnchor ?? terms.anchor), interval: terms.interval };
}
