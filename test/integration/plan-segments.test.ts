import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { defaultActivityInfo, MockActivityEnvironment } from '@temporalio/testing';
import fc from 'fast-check';
import { createDraftInvoice } from '../../src/activities/draft-invoice';
import { createFinalizeInvoice } from '../../src/activities/finalize-invoice';
import { systemClock } from '../../src/clock';
import { createCustomer } from '../../src/customers/store';
import { Decimal, ZERO, type Decimal as DecimalValue } from '../../src/domain/money';
import type { BillingInterval } from '../../src/domain/periods-schema';
import { planSchema } from '../../src/domain/plan';
import { getInvoice, type Invoice } from '../../src/invoices/store';
import { createMeter } from '../../src/meters/store';
import { createPlan } from '../../src/plans/store';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import { startProviderSimulator, type ProviderSimulator } from '../../src/provider/simulator';
import { findDiscrepancies } from '../../src/reconciliations/discrepancies';
import { createSubscription } from '../../src/subscriptions/store';
import { freePort } from '../../scripts/free-port';
import { createTestDatabase, type TestDatabase } from '../support/database';
import {
  ALLOWED_LATENESS_MS,
  billedPeriods,
  billingStop,
  inSpan,
  oracleTotal,
  type NamedPlan,
  type TimelineSubscription,
} from '../support/plan-timeline-oracle';

/*
 * No event left behind, through the real invoice builder on Postgres: random lifecycles of one
 * customer (a subscription, plan changes recorded as the service records them, a cancellation,
 * learnt at once or only after the period holding it was closed, a resubscription, which may
 * keep the first one's boundaries through a billing anchor and then starts mid-period: a first
 * period cut at its start), events stored at random instants and on boundaries, some only after their
 * period's invoice was finalized (billed as adjustments by the next invoice, the resubscription's
 * included). Every event lies in exactly one invoice segment, each segment's lines bill exactly
 * its events, and the invoices add up to the independent recomputation to the cent.
 */

const HOUR = 3_600_000;
const interval: BillingInterval = { kind: 'duration', iso: 'PT1H' };
const tiers = [
  { up_to: '100', unit_price: '0.05', flat_fee: '1.00' },
  { up_to: null, unit_price: '0.01' },
];
const catalog: NamedPlan[] = [
  { id: 'seg-basic', currency: 'USD', base_fee: '10.00', charges: [{ meter: 'seg_gb', model: 'per_unit', unit_price: '0.013' }] },
  {
    id: 'seg-pro',
    currency: 'USD',
    base_fee: '50.00',
    minimum_commitment: '80.00',
    charges: [
      { meter: 'seg_calls', model: 'graduated', tiers },
      { meter: 'seg_gb', model: 'package', package_size: '10', package_price: '0.50', free_units: '5' },
    ],
  },
  {
    id: 'seg-bulk',
    currency: 'USD',
    base_fee: '5.00',
    proration: 'full',
    tiers_across_segments: 'per_segment',
    charges: [
      { meter: 'seg_calls', model: 'volume', tiers },
      { meter: 'seg_gb', model: 'per_unit', unit_price: '0.1' },
    ],
  },
];
const planNamed = (code: string) => catalog.find((p) => p.id === code)!;

let db: TestDatabase;
let simulator: ProviderSimulator;
const meterIds: Record<string, string> = {};
let customers = 0;
let eventIds = 0;

const activity = new MockActivityEnvironment({ ...defaultActivityInfo, workflowExecution: { workflowId: 'billing/segments', runId: 'r' } });
const draft = (subscriptionId: string, customerId: string, start: number, end: number): Promise<{ invoiceId: string }> =>
  activity.run(createDraftInvoice({ pool: db.pool, clock: systemClock, lookbackInvoices: 3 }), {
    subscriptionId,
    customerId,
    planCode: 'ignored-the-builder-reads-the-timeline',
    periodStart: new Date(start).toISOString(),
    periodEnd: new Date(end).toISOString(),
  });
const finalize = (invoiceId: string) => activity.run(createFinalizeInvoice({ pool: db.pool, clock: systemClock }), { invoiceId });

before(async () => {
  [db, simulator] = await Promise.all([createTestDatabase(), startProviderSimulator({ port: await freePort() })]);
  const calls = await createMeter(
    db.pool,
    { code: 'seg_calls', name: 'Calls', event_type: 'seg_call', aggregation: 'count', filter: {} },
    'system',
  );
  const gb = await createMeter(
    db.pool,
    { code: 'seg_gb', name: 'GB', event_type: 'seg_gb', aggregation: 'sum', value_property: 'gb', filter: {} },
    'system',
  );
  meterIds.seg_calls = calls.meter.id;
  meterIds.seg_gb = gb.meter.id;
  const schema = planSchema({ knownMeters: new Set(['seg_calls', 'seg_gb']) });
  for (const plan of catalog) await createPlan(db.pool, schema.parse({ ...plan, name: plan.id, interval }), 'system');
});
after(async () => {
  await simulator?.close();
  await db?.drop();
});

interface Lifecycle {
  subscriptions: Array<TimelineSubscription & { late: boolean[] }>;
}

const instant = (span: number) =>
  fc.oneof(
    fc.integer({ min: 0, max: span - 1 }),
    fc.integer({ min: 0, max: span / HOUR - 1 }).map((h) => h * HOUR),
  );

/** With `billingAnchor`, periods follow its schedule and a start between its boundaries bills a first period cut short. */
const subscriptionArb = (start: number, periods: number, billingAnchor?: number) => {
  const span = periods * HOUR;
  return fc
    .record({
      initialPlan: fc.constantFrom(...catalog.map((p) => p.id)),
      changes: fc.array(fc.record({ at: instant(span), toPlan: fc.constantFrom(...catalog.map((p) => p.id)) }), { maxLength: 4 }),
      cancelAt: fc.option(instant(span), { nil: undefined }),
      // Learnt at once, or only after the close of the period holding it (that invoice then stands in full).
      learntAfter: fc.oneof(fc.constant(0), fc.integer({ min: ALLOWED_LATENESS_MS, max: 2 * HOUR })),
      events: fc.array(
        fc.record({
          at: instant(span),
          meter: fc.constantFrom('seg_calls', 'seg_gb'),
          gb: fc.integer({ min: 1, max: 5000 }).map((n) => new Decimal(n).div(10).toFixed()),
          late: fc.boolean(),
        }),
        { maxLength: 25 },
      ),
    })
    .map(({ initialPlan, changes, cancelAt, learntAfter, events }) => {
      // The service refuses plan changes once the subscription is canceled.
      const sorted = changes
        .filter((c) => cancelAt === undefined || c.at < Math.max(1, cancelAt))
        .map((c) => ({ at: start + c.at, toPlan: c.toPlan }))
        .sort((a, b) => a.at - b.at);
      return {
        anchor: start,
        ...(billingAnchor === undefined ? {} : { billingAnchor }),
        interval,
        timeline: { initialPlan, changes: sorted },
        cancelAt: cancelAt === undefined ? undefined : start + Math.max(1, cancelAt),
        ...(cancelAt === undefined ? {} : { cancelLearntAt: start + Math.max(1, cancelAt) + learntAfter }),
        horizon: start + span,
        events: events.map((e) => ({ at: start + e.at, meter: e.meter, quantity: e.meter === 'seg_calls' ? '1' : e.gb })),
        late: events.map((e) => e.late),
      };
    });
};

/** A subscription, canceled, then a resubscription that carries the first one's late usage. */
const t0 = Date.parse('2026-03-01T00:00:00Z');
/** The resubscription keeps the first one's boundaries (a billing anchor at t0) or starts its own at its start. */
const lifecycleArb: fc.Arbitrary<Lifecycle> = fc
  .tuple(subscriptionArb(t0, 3), fc.integer({ min: 0, max: HOUR }), fc.boolean())
  .chain(([first, gap, keepsBoundaries]) => {
    const end = billingStop(first);
    // Events after the cancellation are the resubscription's business: the first subscription keeps only its own.
    const own = first.events.map((e, i) => ({ e, late: first.late[i]! })).filter(({ e }) => e.at < end);
    const canceled = { ...first, cancelAt: first.cancelAt ?? end, events: own.map(({ e }) => e), late: own.map(({ late }) => late) };
    return subscriptionArb(end + gap, 2, keepsBoundaries ? t0 : undefined).map((second) => ({
      subscriptions: [canceled, { ...second, cancelAt: second.cancelAt ?? second.horizon }],
    }));
  });

async function storeEvent(customerId: string, e: { at: number; meter: string; quantity: string }) {
  await db.pool.query(
    `insert into usage_events (customer_short_id, event_id, meter_short_id, event_time, received_at, value, properties, timestamp_provided, late)
     values ((select short_id from customers where id = $1::uuid), $2, (select short_id from meters where id = $3::uuid), $4, now(), $5, '{}', true, false)`,
    [customerId, `seg-${++eventIds}`, meterIds[e.meter], new Date(e.at), e.meter === 'seg_gb' ? e.quantity : null],
  );
}

/** Records the subscription and its timeline as the service does, then bills it period by period as the workflow does. */
async function run(customerId: string, s: Lifecycle['subscriptions'][number], invoices: Invoice[], last: boolean): Promise<void> {
  const created = await createSubscription(db.pool, {
    customerId,
    planCode: s.timeline.initialPlan,
    anchor: new Date(s.anchor),
    ...(s.billingAnchor === undefined ? {} : { billingAnchor: new Date(s.billingAnchor) }),
    actor: 'system',
  });
  assert.ok(created.created);
  const id = created.subscription.id;
  let current = s.timeline.initialPlan;
  for (const change of s.timeline.changes) {
    if (change.toPlan === current) continue;
    await db.pool.query(
      `insert into subscription_changes (subscription_id, from_plan, to_plan, effective_at, actor, applied_at) values ($1, $2, $3, $4, 'system', $4)`,
      [id, current, change.toPlan, new Date(change.at)],
    );
    current = change.toPlan;
  }
  await db.pool.query(`update subscriptions set plan_code = $2, status = 'canceled', cancel_at = $3, canceled_at = $3 where id = $1`, [
    id,
    current,
    new Date(s.cancelAt!),
  ]);
  const periods = billedPeriods(s);
  // No invoice follows the last subscription's last period to carry its late events: they come in time.
  const final = periods[periods.length - 1]!;
  const late = s.late.map((l, i) => l && !(last && s.events[i]!.at >= final.start));
  for (const [i, e] of s.events.entries()) if (!late[i]) await storeEvent(customerId, e);
  // Each billed part as the workflow drafts it: the first from the subscription start, the last to the cancellation.
  for (const { start, end } of periods) {
    const { invoiceId } = await draft(id, customerId, start, end);
    await finalize(invoiceId);
    invoices.push((await getInvoice(db.pool, invoiceId))!);
    // Late events of this period arrive once its invoice is out.
    for (const [i, e] of s.events.entries()) if (late[i] && inSpan(e.at, start, end)) await storeEvent(customerId, e);
  }
  // Events after the billed end belong to no subscription: stored late, they must stay unbilled.
  for (const [i, e] of s.events.entries()) if (late[i] && e.at >= final.end) await storeEvent(customerId, e);
}

/** The spans a line's units were used in: its segment, else the period of its invoice (or of the invoice it adjusts). */
function spanOf(invoices: Invoice[], invoice: Invoice, line: Invoice['lines'][number]): { start: number; end: number } {
  if (line.segment) return { start: Date.parse(line.segment.start), end: Date.parse(line.segment.end) };
  const period = line.adjusts ?? invoice;
  return { start: period.periodStart.getTime(), end: period.periodEnd.getTime() };
}

describe('plan segments through the invoice builder on Postgres', () => {
  test('random lifecycles: every event in exactly one segment, each segment bills its events, totals match the recomputation', async () => {
    await fc.assert(
      fc.asyncProperty(lifecycleArb, async ({ subscriptions }) => {
        const customer = await createCustomer(db.pool, { external_id: `seg-${++customers}`, name: 'Segments', currency: 'USD' }, 'system');
        const customerId = customer.customer.id;
        const invoices: Invoice[] = [];
        for (const [i, s] of subscriptions.entries()) await run(customerId, s, invoices, i === subscriptions.length - 1);

        const ownSpans = invoices.flatMap((invoice) => {
          const spans = new Map<string, { start: number; end: number }>();
          for (const line of invoice.lines.filter((l) => l.type !== 'adjustment')) {
            const span = spanOf(invoices, invoice, line);
            spans.set(`${span.start}/${span.end}`, span);
          }
          return [...spans.values()];
        });
        const billed = new Map<string, DecimalValue>();
        for (const invoice of invoices) {
          for (const line of invoice.lines) {
            if (line.meter === null) continue;
            const span = spanOf(invoices, invoice, line);
            const key = `${span.start}/${span.end}/${line.meter}`;
            billed.set(key, (billed.get(key) ?? ZERO).plus(line.quantity ?? 0));
          }
        }
        let expected = ZERO;
        for (const s of subscriptions) {
          const stop = billedPeriods(s).at(-1)!.end;
          for (const event of s.events) {
            const holders = ownSpans.filter((span) => inSpan(event.at, span.start, span.end));
            const within = event.at >= s.anchor && event.at < stop;
            if (within) assert.equal(holders.length, 1, `event at ${new Date(event.at).toISOString()}`);
          }
          expected = expected.plus(oracleTotal(s, planNamed));
        }
        for (const [key, units] of billed) {
          const [start, end, meter] = key.split('/');
          const used = subscriptions
            .flatMap((s) => s.events)
            .filter((e) => e.meter === meter && inSpan(e.at, Number(start), Number(end)))
            .reduce((sum, e) => sum.plus(e.quantity), ZERO);
          assert.equal(units.toFixed(), used.toFixed(), key);
        }
        const sum = invoices.reduce((acc, i) => acc.plus(i.total), ZERO);
        assert.equal(sum.toFixed(2), expected.toFixed(2));

        // Reconciliation reprices split and cut-short periods the same way: no amount finding. (Late usage of a meter
        // its segment's plan does not charge is a usage finding there: no invoice bills it, as intended.)
        const { found } = await findDiscrepancies(
          {
            db: db.pool,
            provider: createHttpPaymentProvider({ baseUrl: simulator.url, timeoutMs: 5000 }),
            clock: systemClock,
            lookbackInvoices: 3,
          },
          { start: new Date(0), end: new Date('2100-01-01T00:00:00Z'), customerId, asOf: new Date('2100-01-01T00:00:00Z') },
        );
        assert.deepEqual(
          found.filter((d) => d.kind === 'amount_mismatch').map((d) => d.description),
          [],
        );
      }),
      { numRuns: 25 },
    );
  });
});
