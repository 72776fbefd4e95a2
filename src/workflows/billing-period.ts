import {
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  defineUpdate,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import { Decimal } from '../domain/money';
import { nextPeriod, periodContaining, type BillingInterval } from '../domain/periods';
import { evaluateLimit, type LimitState, type MeterLimit } from '../domain/quota-policy';
import { startInvoiceCollection } from './invoice-collection';

/*
 * One customer's subscription, one run per billing period. Usage arrives as batched signals
 * (never one per event), limits are evaluated with the shared quota policy, soft thresholds
 * notify once per period, a hard limit blocks after its grace period, and at the period end
 * plus the allowed lateness the period is closed and the workflow continues as new.
 * Deterministic: no I/O and no Node APIs here; time is the workflow's own clock.
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
  /** The meter's state for quota checks to answer from memory; `asOf` orders publishes. */
  publishQuota(input: {
    customerId: string;
    meter: string;
    usage: string;
    hardLimit: string | null;
    state: LimitState['status'];
    notified: string[];
    periodEnd: string;
    asOf: string;
  }): Promise<void>;
  /** Writes (or rewrites) the period's draft invoice under its natural key (customer, period start). */
  draftInvoice(input: {
    subscriptionId: string;
    customerId: string;
    planCode: string;
    periodStart: string;
    periodEnd: string;
  }): Promise<{ invoiceId: string }>;
  finalizeInvoice(input: { invoiceId: string }): Promise<{ invoiceId: string; status: string; total: string; currency: string }>;
}

const { notifyThreshold, setEntitlement, publishQuota, draftInvoice, finalizeInvoice } = proxyActivities<BillingPeriodActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes' },
});

export interface SubscriptionTerms {
  subscriptionId: string;
  customer: string;
  customerId: string;
  planCode: string;
  limits: MeterLimit[];
  /** Subscription start: periods are derived from it (ISO 8601 UTC). */
  anchor: string;
  interval: BillingInterval;
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
}

export interface BillingPeriodInput {
  terms: SubscriptionTerms;
  /** How long after the period end late events are still counted in it. */
  allowedLatenessMs: number;
  /** Waits between declined charge attempts (ISO 8601 durations); see invoice-collection. */
  dunning: string[];
  carried?: CarriedState;
}

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

export const usageReported = defineSignal<[UsageReport]>('usageReported');
/** Sent with signal-with-start: a no-op for the run it started, a hand-over when a new subscription replaces this one. */
export const subscriptionStarted = defineSignal<[SubscriptionTerms]>('subscriptionStarted');
/** `at` is the cancellation time recorded in Postgres, so the final invoice and the database agree on it. */
export const cancelSubscription = defineSignal<[{ at: string }?]>('cancelSubscription');
export const changePlan = defineUpdate<BillingPeriodView, [{ planCode: string; limits: MeterLimit[] }]>('changePlan');
export const billingState = defineQuery<BillingPeriodView>('state');

export interface BillingPeriodView {
  subscriptionId: string;
  planCode: string;
  period: { start: string; end: string };
  meters: Record<string, MeterPeriodState>;
  canceled: boolean;
  /** The end of what this run bills: the period end, or the cancellation time. */
  billedUntil: string;
}

export async function billingPeriodWorkflow(input: BillingPeriodInput): Promise<void> {
  let terms = input.terms;
  const period = input.carried
    ? { start: new Date(input.carried.periodStart), end: new Date(input.carried.periodEnd) }
    : periodContaining(new Date(terms.anchor), terms.interval, new Date());
  const meters: Record<string, MeterPeriodState> = input.carried?.meters ?? {};
  const producers: Record<string, number> = input.carried?.producers ?? {};
  const early: Record<string, Decimal> = Object.fromEntries(
    Object.entries(input.carried?.early ?? {}).map(([m, q]) => [m, new Decimal(q)]),
  );
  /** Producers heard in this run: the only ones whose sequences the next period still needs. */
  const heard = new Set<string>();
  let dirty = Object.keys(meters).length > 0;
  /** When the subscription ends (epoch ms), once it is canceled; it may lie beyond this period. */
  let cancelAt = input.carried?.cancelAt === undefined ? undefined : Date.parse(input.carried.cancelAt);
  let canceled = cancelAt !== undefined;
  /** This period's share of billing: up to the cancellation, clamped to [start, end]. */
  const billedPart = (at: number) => new Date(Math.min(period.end.getTime(), Math.max(period.start.getTime(), at)));
  /** Billing of this period ends here: the period end, or the cancellation time when that comes first. */
  let billedUntil = cancelAt === undefined ? period.end : billedPart(cancelAt);
  /** Set once the invoice is being drafted: its end is fixed from then on. */
  let closing = false;
  /** A subscription that replaces this one once it is closed. */
  let successor: SubscriptionTerms | undefined = input.carried?.successor;
  /** What was last published per meter for quota checks, so an unchanged state is not sent again. */
  const published: Record<string, string> = {};

  const meterState = (meter: string) => (meters[meter] ??= { usage: '0', notified: [], limit: { status: 'ok' } });
  const view = (): BillingPeriodView => ({
    subscriptionId: terms.subscriptionId,
    planCode: terms.planCode,
    period: { start: period.start.toISOString(), end: period.end.toISOString() },
    meters,
    canceled,
    billedUntil: billedUntil.toISOString(),
  });

  setHandler(usageReported, (report) => {
    if (report.seq <= (producers[report.producer] ?? -1)) return;
    producers[report.producer] = report.seq;
    heard.add(report.producer);
    for (const delta of report.deltas) {
      const { meter, quantity } = delta;
      const at = Date.parse(delta.at);
      // Entirely before the period: its run has closed; the invoice's late-event policy takes it from
      // the database. A bucket straddling the start counts here, so quotas never miss the first second.
      if (at + USAGE_BUCKET_MS <= period.start.getTime()) continue;
      if (at >= period.end.getTime()) {
        early[meter] = (early[meter] ?? new Decimal(0)).plus(quantity);
        continue;
      }
      const state = meterState(meter);
      state.usage = new Decimal(state.usage).plus(quantity).toFixed();
    }
    dirty = true;
  });
  const cancel = (at: number) => {
    if (canceled) return;
    canceled = true;
    cancelAt = at;
    // Learnt while the invoice is drafted: that invoice covers the period as drafted, and a
    // cancellation after the period end is billed by the next run (see the end of this run).
    if (!closing) billedUntil = billedPart(at);
    showDetails();
  };
  setHandler(cancelSubscription, (input) => cancel(input ? Date.parse(input.at) : Date.now()));
  setHandler(subscriptionStarted, (next) => {
    if (next.subscriptionId === terms.subscriptionId) return;
    successor = next;
    cancel(Date.parse(next.anchor));
  });
  setHandler(billingState, view);
  showDetails();
  setHandler(
    changePlan,
    async ({ planCode, limits }) => {
      terms = { ...terms, planCode, limits };
      await evaluateLimits();
      return view();
    },
    {
      validator: ({ planCode, limits }) => {
        if (!planCode) throw new Error('planCode is required');
        if (!Array.isArray(limits)) throw new Error('limits must be an array');
      },
    },
  );

  /** Applies the quota policy to every limited meter; notifies and (un)blocks as it says. */
  async function evaluateLimits(): Promise<void> {
    dirty = false;
    const now = new Date();
    for (const limit of terms.limits) {
      const state = meterState(limit.meter);
      const result = evaluateLimit(limit, { usage: state.usage, notified: state.notified, state: state.limit }, now);
      const wasBlocked = state.limit.status === 'blocked';
      state.limit = result.state;
      for (const crossing of result.newlyCrossed) {
        // Recorded before the activity runs so a concurrent evaluation cannot notify twice;
        // the activity itself is retried until it succeeds and is idempotent per threshold.
        state.notified.push(crossing.key);
        await notifyThreshold({
          subscriptionId: terms.subscriptionId,
          customer: terms.customer,
          meter: limit.meter,
          periodStart: period.start.toISOString(),
          threshold: crossing.key,
          usage: state.usage,
        });
      }
      const blocked = result.state.status === 'blocked';
      if (blocked !== wasBlocked) {
        await setEntitlement({ customerId: terms.customerId, meter: limit.meter, blocked, periodEnd: period.end.toISOString() });
      }
      const quota = { usage: state.usage, hardLimit: limit.hard_limit ?? null, state: state.limit.status, notified: [...state.notified] };
      const signature = JSON.stringify(quota);
      if (published[limit.meter] !== signature) {
        published[limit.meter] = signature;
        await publishQuota({
          customerId: terms.customerId,
          meter: limit.meter,
          ...quota,
          periodEnd: period.end.toISOString(),
          asOf: now.toISOString(),
        });
      }
    }
    showDetails();
  }

  /** What the Temporal UI shows for this run at a glance (memo and current details). */
  function showDetails(): void {
    const usage = Object.fromEntries(Object.entries(meters).map(([m, s]) => [m, s.usage]));
    upsertMemo({ period: view().period, usage });
    setCurrentDetails(
      [
        `**${terms.customer}** on plan \`${terms.planCode}\`${canceled ? ' (canceled)' : ''}`,
        `Period ${period.start.toISOString()} → ${period.end.toISOString()}`,
        ...Object.entries(meters).map(([m, s]) => `- ${m}: ${s.usage} (${s.limit.status}; notified ${s.notified.join(', ') || 'none'})`),
      ].join('\n'),
    );
  }

  /** The next moment something happens without a signal: a grace period ending. */
  const nextGraceDeadline = () =>
    Math.min(
      ...Object.values(meters).map((m) => (m.limit.status === 'over_limit_in_grace' ? Date.parse(m.limit.grace_ends_at) : Infinity)),
    );

  // A cancellation is billed at once, not at the boundary: the final invoice covers
  // [start, cancellation) and is issued after the allowed lateness, like any other close.
  const closeAt = () => billedUntil.getTime() + input.allowedLatenessMs;
  while (Date.now() < closeAt()) {
    const wakeAt = Math.min(closeAt(), nextGraceDeadline());
    const wasCanceled = canceled;
    await condition(() => dirty || canceled !== wasCanceled || workflowInfo().continueAsNewSuggested, Math.max(1, wakeAt - Date.now()));
    if (dirty || Date.now() >= nextGraceDeadline()) await evaluateLimits();
    if (workflowInfo().continueAsNewSuggested && !canceled) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof billingPeriodWorkflow>({ ...input, terms, carried: carry(period) });
    }
  }

  closing = true;
  // A cancellation at or before the period start (recorded for an earlier period, and learnt
  // late) leaves nothing of this period to bill: no invoice, and no base fee for it.
  if (billedUntil > period.start || !patched(BILL_UNTIL_CANCELLATION)) {
    const { invoiceId } = await draftInvoice({
      subscriptionId: terms.subscriptionId,
      customerId: terms.customerId,
      planCode: terms.planCode,
      periodStart: period.start.toISOString(),
      periodEnd: billedUntil.toISOString(),
    });
    await finalizeInvoice({ invoiceId });
    // Collection (charge, dunning) outlives this run, so the next period starts at once.
    await startInvoiceCollection(invoiceId, input.dunning);
  }
  for (const limit of terms.limits) {
    if (meters[limit.meter]?.limit.status === 'blocked') {
      await setEntitlement({ customerId: terms.customerId, meter: limit.meter, blocked: false, periodEnd: period.end.toISOString() });
    }
  }
  await condition(allHandlersFinished);
  const next = nextPeriod(new Date(terms.anchor), terms.interval, period);
  const nextRun: CarriedState = {
    periodStart: next.start.toISOString(),
    periodEnd: next.end.toISOString(),
    meters: Object.fromEntries(Object.entries(early).map(([m, q]) => [m, { usage: q.toFixed(), notified: [], limit: { status: 'ok' } }])),
    producers: Object.fromEntries(Object.entries(producers).filter(([p]) => heard.has(p))),
    early: {},
  };
  // Canceled after this period's end (learnt during its lateness, a pending close or a worker
  // outage): the following periods up to the cancellation are billed too, each after its own
  // allowed lateness, by the next run(s), which then end or hand over to the successor.
  if (cancelAt !== undefined && cancelAt > period.end.getTime() && patched(BILL_UNTIL_CANCELLATION)) {
    await continueAsNew<typeof billingPeriodWorkflow>({
      ...input,
      terms,
      carried: { ...nextRun, cancelAt: new Date(cancelAt).toISOString(), ...(successor ? { successor } : {}) },
    });
  }
  if (successor) {
    // The successor bills from its own first period, however late the hand-over comes.
    const first = periodContaining(new Date(successor.anchor), successor.interval, new Date(successor.anchor));
    const carried: CarriedState | undefined = patched(BILL_UNTIL_CANCELLATION)
      ? { periodStart: first.start.toISOString(), periodEnd: first.end.toISOString(), meters: {}, producers: nextRun.producers, early: {} }
      : undefined;
    await continueAsNew<typeof billingPeriodWorkflow>({
      terms: successor,
      allowedLatenessMs: input.allowedLatenessMs,
      dunning: input.dunning,
      ...(carried ? { carried } : {}),
    });
  }
  if (canceled) return;

  await continueAsNew<typeof billingPeriodWorkflow>({ ...input, terms, carried: nextRun });

  function carry(p: { start: Date; end: Date }): CarriedState {
    return {
      periodStart: p.start.toISOString(),
      periodEnd: p.end.toISOString(),
      meters,
      producers,
      early: Object.fromEntries(Object.entries(early).map(([m, q]) => [m, q.toFixed()])),
    };
  }
}
