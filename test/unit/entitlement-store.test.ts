import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EntitlementStore, secondsUntil } from '../../src/entitlements/store';

function store() {
  let now = Date.parse('2026-03-15T12:00:00Z');
  const s = new EntitlementStore({ now: () => new Date(now) }, '/upgrade', '/top-up');
  return { s, tick: (ms: number) => (now += ms), at: (ms: number) => new Date(now + ms) };
}

describe('entitlement store', () => {
  test('a block applies to its customer and meter only, until lifted', () => {
    const { s, at } = store();
    s.apply({ customerId: 'c1', meter: 'tokens', blocked: true, resetsAt: at(3_600_000) });
    assert.equal(s.isBlocked('c1', 'tokens'), true);
    assert.equal(s.isBlocked('c1', 'api_calls'), false);
    assert.equal(s.isBlocked('c2', 'tokens'), false);
    assert.deepEqual(s.blockOf('c1', 'tokens'), { resetsAt: at(3_600_000) });
    s.apply({ customerId: 'c1', meter: 'tokens', blocked: false, resetsAt: at(3_600_000) });
    assert.equal(s.isBlocked('c1', 'tokens'), false);
    assert.equal(s.size, 0);
  });

  test('a block lapses at its reset time even if the unblock never arrives', () => {
    const { s, tick, at } = store();
    s.apply({ customerId: 'c1', meter: 'tokens', blocked: true, resetsAt: at(1000) });
    tick(999);
    assert.equal(s.isBlocked('c1', 'tokens'), true);
    tick(1);
    assert.equal(s.isBlocked('c1', 'tokens'), false);
    assert.equal(s.size, 0);
  });

  test('a snapshot replaces everything; a block for a new period moves the reset time', () => {
    const { s, at } = store();
    s.apply({ customerId: 'c1', meter: 'tokens', blocked: true, resetsAt: at(1000) });
    s.replace([
      { customerId: 'c2', meter: 'tokens', blocked: true, resetsAt: at(1000) },
      { customerId: 'c2', meter: 'api_calls', blocked: true, resetsAt: at(1000) },
    ]);
    assert.equal(s.isBlocked('c1', 'tokens'), false);
    assert.equal(s.size, 2);
    s.apply({ customerId: 'c2', meter: 'tokens', blocked: true, resetsAt: at(5000) });
    assert.deepEqual(s.blockOf('c2', 'tokens'), { resetsAt: at(5000) });
  });

  test('Retry-After is the whole seconds to the reset, at least 1', () => {
    const now = new Date('2026-03-15T12:00:00Z');
    assert.equal(secondsUntil(new Date(now.getTime() + 3_600_000), now), 3600);
    assert.equal(secondsUntil(new Date(now.getTime() + 1_001), now), 2);
    assert.equal(secondsUntil(new Date(now.getTime() - 5_000), now), 1);
  });
});

describe('published quota state', () => {
  test('kept per customer and meter, replaced by newer publishes, lapsing at the period end', () => {
    const clock = { now: () => new Date('2026-03-01T00:00:00Z') };
    const store = new EntitlementStore(clock, '/upgrade', '/top-up');
    const quota = {
      usage: '120',
      hardLimit: '100',
      state: 'over_limit_in_grace',
      notified: ['80%', '100%'],
      nextDecision: null,
      asOf: new Date('2026-02-28T23:59:00Z'),
    };
    store.apply({ customerId: 'c1', meter: 'calls', blocked: false, resetsAt: new Date('2026-03-01T00:05:00Z'), quota });
    assert.deepEqual(store.quotaOf('c1', 'calls'), { ...quota, resetsAt: new Date('2026-03-01T00:05:00Z') });
    assert.equal(store.quotaOf('c1', 'other'), undefined);
    assert.equal(store.isBlocked('c1', 'calls'), false, 'a published state is not a block');
    store.apply({
      customerId: 'c1',
      meter: 'calls',
      blocked: false,
      resetsAt: new Date('2026-02-28T00:00:00Z'),
      quota: { ...quota, usage: '130' },
    });
    assert.equal(store.quotaOf('c1', 'calls'), undefined, 'the period it belongs to is over');
  });
});
