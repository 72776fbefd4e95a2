import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Decimal } from '../../src/domain/money';
import { isUrgent, projectedUsage, reportDue, type MeterUsageEstimate } from '../../src/domain/usage-urgency';

const NOW = 1_800_000_000_000;
const meter = (published: MeterUsageEstimate['published'], sentSincePublish: string, pending: string): MeterUsageEstimate => ({
  ...(published ? { published } : {}),
  sentSincePublish,
  pending,
});

describe('isUrgent', () => {
  test('urgent from nextDecision × (1 − margin) on, counting published, reported-since and pending usage', () => {
    const published = { usage: '800', nextDecision: '1000' };
    // 1000 × 0.9 = 900: 800 + 50 + 49 is below, 800 + 50 + 50 reaches it.
    assert.equal(isUrgent(meter(published, '50', '49'), 0.1, NOW), false);
    assert.equal(isUrgent(meter(published, '50', '50'), 0.1, NOW), true);
    assert.equal(isUrgent(meter(published, '0', '500'), 0.1, NOW), true, 'over the decision point is urgent too');
    assert.equal(isUrgent(meter(published, '0', '99.999'), 0.1, NOW), false);
    assert.equal(isUrgent(meter(published, '0', '100'), 0.1, NOW), true);
  });

  test('exact in decimals: no float rounding at the boundary', () => {
    // 0.3 × (1 − 0.1) = 0.27 exactly; in floats 0.3 * 0.9 is 0.27000000000000002.
    const published = { usage: '0.2', nextDecision: '0.3' };
    assert.equal(isUrgent(meter(published, '0', '0.07'), '0.1', NOW), true);
    assert.equal(isUrgent(meter(published, '0', '0.0699999999'), '0.1', NOW), false);
  });

  test('a margin of 0 signals at the decision point itself; a margin of 1 at any usage', () => {
    const published = { usage: '0', nextDecision: '100' };
    assert.equal(isUrgent(meter(published, '0', '99'), 0, NOW), false);
    assert.equal(isUrgent(meter(published, '0', '100'), 0, NOW), true);
    assert.equal(isUrgent(meter(published, '0', '1'), 1, NOW), true);
  });

  test('never urgent without a published state, without a decision left, or without pending usage', () => {
    assert.equal(isUrgent(meter(undefined, '0', '1000000'), 0.1, NOW), false);
    assert.equal(isUrgent(meter({ usage: '5000', nextDecision: null }, '0', '1000'), 0.1, NOW), false);
    assert.equal(isUrgent(meter({ usage: '950', nextDecision: '1000' }, '0', '0'), 0.1, NOW), false);
  });

  test('property: urgent exactly when the estimate reaches the signal point (pending > 0)', () => {
    const amount = fc.integer({ min: 0, max: 1_000_000 }).map((n) => new Decimal(n).div(100).toFixed());
    fc.assert(
      fc.property(amount, amount, amount, amount, fc.integer({ min: 0, max: 100 }), (usage, sent, pending, decision, pct) => {
        const margin = new Decimal(pct).div(100);
        const estimate = new Decimal(usage).plus(sent).plus(pending);
        const expected = new Decimal(pending).gt(0) && estimate.gte(new Decimal(decision).times(new Decimal(1).minus(margin)));
        assert.equal(isUrgent(meter({ usage, nextDecision: decision }, sent, pending), margin, NOW), expected);
      }),
    );
  });
});

describe('projectedUsage', () => {
  const read = (usage: string, countedAtMs: number) => ({ usage, countedAtMs });

  test('grows from the latest read as fast as usage grew between the two latest reads', () => {
    // 100 → 400 in 60 s: 5 per second; 30 s after the latest read, 400 + 150.
    const published = { usage: '400', nextDecision: '500', countedAtMs: NOW - 30_000, previousRead: read('100', NOW - 90_000) };
    assert.equal(projectedUsage(published, NOW)!.toFixed(), '550');
    assert.equal(projectedUsage(published, NOW - 30_000)!.toFixed(), '400', 'at the read itself, what it counted');
  });

  test('nothing to project from fewer than two reads, or reads out of order; never below the latest read', () => {
    assert.equal(projectedUsage({ usage: '400', nextDecision: '500', countedAtMs: NOW }, NOW), undefined);
    assert.equal(projectedUsage({ usage: '400', nextDecision: '500', previousRead: read('100', NOW - 1000) }, NOW), undefined);
    assert.equal(
      projectedUsage({ usage: '400', nextDecision: '500', countedAtMs: NOW - 1000, previousRead: read('100', NOW - 1000) }, NOW),
      undefined,
    );
    const shrunk = { usage: '400', nextDecision: '500', countedAtMs: NOW - 1000, previousRead: read('450', NOW - 2000) };
    assert.equal(projectedUsage(shrunk, NOW)!.toFixed(), '400');
    const clockBehind = { usage: '400', nextDecision: '500', countedAtMs: NOW + 5000, previousRead: read('100', NOW - 2000) };
    assert.equal(projectedUsage(clockBehind, NOW)!.toFixed(), '400');
  });

  test('urgent on the projection when this process alone holds too little of the unread usage', () => {
    // Another process stores as much as this one: this one's 40 pending leave its own estimate at
    // 440 (< 0.9 × 500), while the reads say 5 per second, i.e. 550 by now.
    const latest = { usage: '400', nextDecision: '500', countedAtMs: NOW - 30_000 };
    const published = { ...latest, previousRead: read('100', NOW - 90_000) };
    assert.equal(isUrgent(meter(latest, '0', '40'), 0.1, NOW), false);
    assert.equal(isUrgent(meter(published, '0', '40'), 0.1, NOW), true);
    assert.equal(isUrgent(meter(published, '0', '40'), 0.1, NOW - 29_000), false, 'projected 405 one second after the read');
    assert.equal(isUrgent(meter(published, '0', '0'), 0.1, NOW), false, 'nothing pending here: the process holding usage decides');
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
