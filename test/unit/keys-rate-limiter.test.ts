import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AuthFailureLimiter, KeyRateLimiter } from '../../src/keys/rate-limiter';

describe('per-key rate limiter', () => {
  test('steady rate, then the burst allowance, then refusal with a retry time', async () => {
    const limiter = new KeyRateLimiter();
    const policy = { ratePerSecond: 3, burst: 2 };
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await limiter.consume('k1', policy));
    assert.deepEqual(
      results.map((r) => r.allowed),
      [true, true, true, true, true, false],
    );
    assert.deepEqual(
      results[0]!.windows.map((w) => [w.policy, w.quota, w.windowSeconds, w.remaining]),
      [
        ['per-second', 3, 1, 2],
        ['burst', 2, 10, 2],
      ],
    );
    assert.deepEqual(
      results[4]!.windows.map((w) => w.remaining),
      [0, 0],
    );
    const refused = results[5]!;
    assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 1000, String(refused.retryAfterMs));
  });

  test('keys are limited independently, even with the same policy', async () => {
    const limiter = new KeyRateLimiter();
    const policy = { ratePerSecond: 1, burst: 0 };
    assert.equal((await limiter.consume('a', policy)).allowed, true);
    assert.equal((await limiter.consume('a', policy)).allowed, false);
    assert.equal((await limiter.consume('b', policy)).allowed, true);
  });

  test('the budget comes back when the window passes', async () => {
    const limiter = new KeyRateLimiter();
    const policy = { ratePerSecond: 1, burst: 0 };
    assert.equal((await limiter.consume('a', policy)).allowed, true);
    const refused = await limiter.consume('a', policy);
    assert.equal(refused.allowed, false);
    assert.deepEqual(
      refused.windows.map((w) => w.policy),
      ['per-second'],
    );
    await new Promise((r) => setTimeout(r, refused.retryAfterMs + 20));
    assert.equal((await limiter.consume('a', policy)).allowed, true);
  });
});

describe('failed-authentication limiter', () => {
  test('an address may spend its failures; then it is refused until the window ends, other addresses are not', async () => {
    const limiter = new AuthFailureLimiter({ limit: 3, windowSeconds: 60 });
    assert.deepEqual(
      (await limiter.check('10.0.0.1')).windows.map((w) => [w.policy, w.quota, w.windowSeconds, w.remaining]),
      [['auth-failures', 3, 60, 3]],
    );
    const charges = [];
    for (let i = 0; i < 3; i++) charges.push(await limiter.charge('10.0.0.1'));
    assert.deepEqual(
      charges.map((d) => [d.allowed, d.windows[0]!.remaining]),
      [
        [true, 2],
        [true, 1],
        [true, 0],
      ],
    );
    const spent = await limiter.check('10.0.0.1');
    assert.equal(spent.allowed, false);
    assert.ok(spent.retryAfterMs > 59_000 && spent.retryAfterMs <= 60_000, String(spent.retryAfterMs));
    assert.equal((await limiter.charge('10.0.0.1')).allowed, false);
    assert.equal((await limiter.check('10.0.0.2')).allowed, true);
  });

  test('a refunded charge (a lookup that found a valid key) costs nothing', async () => {
    const limiter = new AuthFailureLimiter({ limit: 2, windowSeconds: 60 });
    for (let i = 0; i < 10; i++) {
      assert.equal((await limiter.charge('10.0.0.3')).allowed, true);
      await limiter.refund('10.0.0.3');
    }
    assert.equal((await limiter.check('10.0.0.3')).windows[0]!.remaining, 2);
  });
});
