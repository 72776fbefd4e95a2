import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Decimal } from '../../src/domain/money';
import { isUrgent, reportDue, type MeterUsageEstimate } from '../../src/domain/usage-urgency';

const meter = (
  published: MeterUsageEstimate['published'],
  sentSincePublish: string,
  pending: string,
  producers = 1,
): MeterUsageEstimate => ({
  ...(published ? { published } : {}),
  sentSincePublish,
  pending,
  producers,
});

describe('isUrgent', () => {
  test('urgent from nextDecision × (1 − margin) on, counting published, reported-since and pending usage', () => {
    const published = { usage: '800', nextDecision: '1000' };
    // 1000 × 0.9 = 900: 800 + 50 + 49 is below, 800 + 50 + 50 reaches it.
    assert.equal(isUrgent(meter(published, '50', '49'), 0.1), false);
    assert.equal(isUrgent(meter(published, '50', '50'), 0.1), true);
    assert.equal(isUrgent(meter(published, '0', '500'), 0.1), true, 'over the decision point is urgent too');
    assert.equal(isUrgent(meter(published, '0', '99.999'), 0.1), false);
    assert.equal(isUrgent(meter(published, '0', '100'), 0.1), true);
  });

  test('exact in decimals: no float rounding at the boundary', () => {
    // 0.3 × (1 − 0.1) = 0.27 exactly; in floats 0.3 * 0.9 is 0.27000000000000002.
    const published = { usage: '0.2', nextDecision: '0.3' };
    assert.equal(isUrgent(meter(published, '0', '0.07'), '0.1'), true);
    assert.equal(isUrgent(meter(published, '0', '0.0699999999'), '0.1'), false);
  });

  test('a margin of 0 signals at the decision point itself; a margin of 1 at any usage', () => {
    const published = { usage: '0', nextDecision: '100' };
    assert.equal(isUrgent(meter(published, '0', '99'), 0), false);
    assert.equal(isUrgent(meter(published, '0', '100'), 0), true);
    assert.equal(isUrgent(meter(published, '0', '1'), 1), true);
  });

  test('never urgent without a published state, without a decision left, or without pending usage', () => {
    assert.equal(isUrgent(meter(undefined, '0', '1000000'), 0.1), false);
    assert.equal(isUrgent(meter({ usage: '5000', nextDecision: null }, '0', '1000'), 0.1), false);
    assert.equal(isUrgent(meter({ usage: '950', nextDecision: '1000' }, '0', '0'), 0.1), false);
  });

  test('property: urgent exactly when the estimate reaches the signal point (pending > 0)', () => {
    const amount = fc.integer({ min: 0, max: 1_000_000 }).map((n) => new Decimal(n).div(100).toFixed());
    fc.assert(
      fc.property(
        amount,
        amount,
        amount,
        amount,
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 1, max: 8 }),
        (usage, sent, pending, decision, pct, producers) => {
          const margin = new Decimal(pct).div(100);
          const estimate = new Decimal(usage).plus(new Decimal(sent).plus(pending).times(producers));
          const expected = new Decimal(pending).gt(0) && estimate.gte(new Decimal(decision).times(new Decimal(1).minus(margin)));
          assert.equal(isUrgent(meter({ usage, nextDecision: decision }, sent, pending, producers), margin), expected);
        },
      ),
    );
  });

  test("with several API processes, each one's unread usage stands for each process's", () => {
    const published = { usage: '300', nextDecision: '500' };
    // Two processes with 80 each: 460 in truth, past 0.9 × 500. Alone, 380 would not be urgent.
    assert.equal(isUrgent(meter(published, '0', '80', 1), 0.1), false);
    assert.equal(isUrgent(meter(published, '0', '80', 2), 0.1), true);
    assert.equal(isUrgent(meter(published, '40', '40', 2), 0.1), true, 'reported since the publish counts the same');
    assert.equal(isUrgent(meter(published, '0', '0', 4), 0.1), false, 'nothing pending here: a process holding usage decides');
  });

  test('property: however the unread usage is shared, a process holding some is urgent once the true usage is', () => {
    // The process with the largest share: its share × producers is at least the total.
    const share = fc.integer({ min: 0, max: 10_000 });
    fc.assert(
      fc.property(fc.array(share, { minLength: 1, maxLength: 6 }), share, share, (shares, usage, decision) => {
        const total = shares.reduce((a, b) => a + b, usage);
        const truth = isUrgent(meter({ usage: String(usage), nextDecision: String(decision) }, '0', String(total - usage)), 0.1);
        const someone = shares.some((s) =>
          isUrgent(meter({ usage: String(usage), nextDecision: String(decision) }, '0', String(s), shares.length), 0.1),
        );
        if (truth) assert.ok(someone, `true usage ${total} urgent, no process of ${JSON.stringify(shares)} saw it`);
      }),
    );
  });
});

describe('reportDue', () => {
  const far = meter({ usage: '10', nextDecision: '1000' }, '0', '5');
  const near = meter({ usage: '890', nextDecision: '1000' }, '0', '10');
  const base = { margin: 0.1, sinceMs: 1_000_000, intervalMs: 300_000 };

  test('far from every decision point: not before the interval has passed since the clock started, slow from then on', () => {
    assert.equal(reportDue({ ...base, meters: [far], nowMs: base.sinceMs }), null);
    assert.equal(reportDue({ ...base, meters: [far], nowMs: base.sinceMs + 299_999 }), null);
    assert.equal(reportDue({ ...base, meters: [far], nowMs: base.sinceMs + 300_000 }), 'slow');
  });

  test('any meter near its decision point makes the report urgent at once', () => {
    assert.equal(reportDue({ ...base, meters: [far, near], nowMs: base.sinceMs }), 'urgent');
    assert.equal(reportDue({ ...base, meters: [far, near], nowMs: base.sinceMs + 300_000 }), 'urgent');
  });

  test('meters without a published state get slow reports only', () => {
    const unlimited = meter(undefined, '0', '1000000000');
    assert.equal(reportDue({ ...base, meters: [unlimited], nowMs: base.sinceMs + 1000 }), null);
    assert.equal(reportDue({ ...base, meters: [unlimited], nowMs: base.sinceMs + 300_000 }), 'slow');
  });

  test("a publish after the clock started (another process's report was read) restarts it; one before it does not", () => {
    const readAt = (countedAtMs: number, pending = '5') => meter({ usage: '10', nextDecision: '1000', countedAtMs }, '0', pending);
    const later = base.sinceMs + 120_000;
    assert.equal(reportDue({ ...base, meters: [readAt(later)], nowMs: base.sinceMs + 300_000 }), null);
    assert.equal(reportDue({ ...base, meters: [readAt(later)], nowMs: later + 299_999 }), null);
    assert.equal(reportDue({ ...base, meters: [readAt(later)], nowMs: later + 300_000 }), 'slow');
    // The newest publish of the customer's meters counts.
    assert.equal(reportDue({ ...base, meters: [readAt(base.sinceMs - 5000), readAt(later)], nowMs: base.sinceMs + 300_000 }), null);
    assert.equal(reportDue({ ...base, meters: [readAt(base.sinceMs - 5000)], nowMs: base.sinceMs + 300_000 }), 'slow');
    // Stamped by a clock ahead of this one: the report comes that much later.
    assert.equal(reportDue({ ...base, meters: [readAt(base.sinceMs + 5000)], nowMs: base.sinceMs + 304_999 }), null);
    assert.equal(reportDue({ ...base, meters: [readAt(base.sinceMs + 5000)], nowMs: base.sinceMs + 305_000 }), 'slow');
    // Urgency does not wait for any clock.
    assert.equal(
      reportDue({ ...base, meters: [meter({ usage: '890', nextDecision: '1000', countedAtMs: later }, '0', '10')], nowMs: later }),
      'urgent',
    );
  });

  test('nothing pending, nothing due', () => {
    assert.equal(reportDue({ ...base, meters: [], nowMs: base.sinceMs + 10_000_000 }), null);
  });
});
