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

  test('the previous read of the same period is kept beside the latest, through snapshots; a new period forgets it', () => {
    const clock = { now: () => new Date('2026-03-01T00:00:00Z') };
    const store = new EntitlementStore(clock, '/upgrade', '/top-up');
    const resetsAt = new Date('2026-03-01T01:00:00Z');
    const read = (usage: string, at: string) => ({
      usage,
      hardLimit: '1000',
      state: 'ok',
      notified: [] as string[],
      nextDecision: '500',
      asOf: new Date(at),
      countedAt: new Date(at),
    });
    const publish = (quota: ReturnType<typeof read>, at = resetsAt) =>
      store.apply({ customerId: 'c1', meter: 'calls', blocked: false, resetsAt: at, quota });
    publish(read('100', '2026-02-28T23:58:00Z'));
    assert.equal(store.quotaOf('c1', 'calls')!.previousRead, undefined, 'one read: nothing to compare with');
    publish(read('400', '2026-02-28T23:59:00Z'));
    assert.deepEqual(store.quotaOf('c1', 'calls')!.previousRead, { usage: '100', countedAt: new Date('2026-02-28T23:58:00Z') });
    // A publish without a new read (a threshold notified, say) keeps the pair.
    publish({ ...read('400', '2026-02-28T23:59:00Z'), notified: ['50%'] });
    assert.deepEqual(store.quotaOf('c1', 'calls')!.previousRead, { usage: '100', countedAt: new Date('2026-02-28T23:58:00Z') });
    store.replace([{ customerId: 'c1', meter: 'calls', blocked: false, resetsAt, quota: read('400', '2026-02-28T23:59:00Z') }]);
    assert.deepEqual(store.quotaOf('c1', 'calls')!.previousRead, { usage: '100', countedAt: new Date('2026-02-28T23:58:00Z') });
    publish(read('0', '2026-03-01T01:00:01Z'), new Date('2026-03-01T02:00:00Z'));
    assert.equal(store.quotaOf('c1', 'calls')!.previousRead, undefined, 'the reads of the period before do not count');
  });
});
