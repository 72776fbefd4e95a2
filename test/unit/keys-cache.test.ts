import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KeyCache } from '../../src/keys/cache';

type V = { id: string };

function cache(opts: { ttlMs?: number; maxEntries?: number; maxUnknown?: number } = {}) {
  let now = 0;
  const c = new KeyCache<V>({
    ttlMs: opts.ttlMs ?? 1000,
    maxEntries: opts.maxEntries ?? 10,
    maxUnknown: opts.maxUnknown ?? 10,
    now: () => now,
  });
  c.setLive(true);
  return { c, tick: (ms: number) => (now += ms) };
}

describe('key verification cache', () => {
  test('caches known and unknown keys until the TTL backstop', () => {
    const { c, tick } = cache({ ttlMs: 1000 });
    c.set('d1', { id: 'k1' }, c.generation);
    c.set('d2', null, c.generation);
    assert.deepEqual(c.get('d1'), { id: 'k1' });
    assert.equal(c.get('d2'), null);
    assert.equal(c.get('d3'), undefined);
    tick(999);
    assert.deepEqual(c.get('d1'), { id: 'k1' });
    tick(1);
    assert.equal(c.get('d1'), undefined);
    assert.equal(c.get('d2'), undefined);
  });

  test('evicting a key id drops its entry; a lookup that started before is not stored', () => {
    const { c } = cache();
    c.set('d1', { id: 'k1' }, c.generation);
    const startedAt = c.generation;
    c.evict('k1');
    assert.equal(c.get('d1'), undefined);
    c.set('d1', { id: 'k1' }, startedAt);
    assert.equal(c.get('d1'), undefined, 'a result read before the invalidation may be stale');
    c.set('d1', { id: 'k1' }, c.generation);
    assert.deepEqual(c.get('d1'), { id: 'k1' });
  });

  test('not live (listener down) means nothing is served or stored; going live starts empty', () => {
    const { c } = cache();
    c.set('d1', { id: 'k1' }, c.generation);
    c.setLive(false);
    assert.equal(c.get('d1'), undefined);
    c.set('d1', { id: 'k1' }, c.generation);
    c.setLive(true);
    assert.equal(c.get('d1'), undefined);
    assert.deepEqual(c.size, { known: 0, unknown: 0 });
  });

  test('while the feed is down, the known keys it had are the last resort; a change through this process still removes one', () => {
    const { c } = cache();
    c.set('d1', { id: 'k1' }, c.generation);
    c.set('d2', { id: 'k2' }, c.generation);
    c.set('d3', null, c.generation);
    assert.equal(c.lastKnown('d1'), undefined, 'nothing set aside while live');
    c.setLive(false);
    assert.equal(c.get('d1'), undefined, 'never served as a cache hit');
    assert.deepEqual(c.lastKnown('d1'), { id: 'k1' });
    assert.equal(c.lastKnown('d3'), undefined, 'an unknown key may have been created since: not kept');
    c.evict('k2');
    assert.equal(c.lastKnown('d2'), undefined);
    c.setLive(false);
    assert.deepEqual(c.lastKnown('d1'), { id: 'k1' }, 'a repeated loss keeps what was known before the first');
    c.setLive(true);
    assert.equal(c.lastKnown('d1'), undefined, 'live again: forgotten');
  });

  test('bounded: least recently used known keys go first; a flood of unknown keys never evicts known ones', () => {
    const { c } = cache({ maxEntries: 2, maxUnknown: 3 });
    c.set('a', { id: 'ka' }, c.generation);
    c.set('b', { id: 'kb' }, c.generation);
    c.get('a');
    c.set('c', { id: 'kc' }, c.generation);
    assert.equal(c.get('b'), undefined);
    assert.deepEqual(c.get('a'), { id: 'ka' });
    for (let i = 0; i < 100; i++) c.set(`junk${i}`, null, c.generation);
    assert.deepEqual(c.size, { known: 2, unknown: 3 });
    assert.deepEqual(c.get('a'), { id: 'ka' });
    assert.deepEqual(c.get('c'), { id: 'kc' });
  });
});
