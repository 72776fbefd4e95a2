import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32, generateKey, KEY_LENGTH, parseKey } from '../../src/keys/format';

describe('API key format', () => {
  test('CRC-32 matches the IEEE check value', () => {
    assert.equal(crc32('123456789'), 0xcbf43926);
    assert.equal(crc32(''), 0);
  });

  test('a generated key has the prefix, the environment, base62 body and a valid checksum', () => {
    for (const env of ['live', 'test'] as const) {
      const { secret, start } = generateKey(env);
      assert.match(secret, new RegExp(`^mf_${env}_[0-9A-Za-z]{32}$`));
      assert.equal(secret.length, KEY_LENGTH);
      assert.equal(start, secret.slice(0, 12));
      assert.deepEqual(parseKey(secret), { ok: true, environment: env, start });
    }
  });

  test('keys do not repeat and use the whole alphabet (≥ 128 random bits, uniform base62)', () => {
    const seen = new Set<string>();
    const chars = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const { secret } = generateKey('live');
      seen.add(secret);
      for (const c of secret.slice(8, 34)) chars.add(c);
    }
    assert.equal(seen.size, 2000);
    assert.equal(chars.size, 62);
    // 26 base62 characters, 4 of them displayed: what stays secret is still over 128 bits.
    assert.ok(22 * Math.log2(62) >= 128);
  });

  test('every single-character typo is caught by the checksum, never looked up', () => {
    const { secret } = generateKey('live');
    let caught = 0;
    for (let i = 8; i < secret.length; i++) {
      const replacement = secret[i] === 'a' ? 'b' : 'a';
      const typo = secret.slice(0, i) + replacement + secret.slice(i + 1);
      const parsed = parseKey(typo);
      assert.equal(parsed.ok, false);
      if (!parsed.ok && parsed.reason === 'bad_checksum') caught++;
    }
    assert.equal(caught, secret.length - 8);
  });

  test('malformed keys are refused by shape', () => {
    const { secret } = generateKey('test');
    for (const bad of [
      '',
      'mf_live_',
      secret.slice(0, -1),
      `${secret}x`,
      secret.replace('mf_test_', 'mf_prod_'),
      secret.replace('mf_', 'sk_'),
      `${secret.slice(0, 20)}-${secret.slice(21)}`,
      ` ${secret}`,
    ]) {
      assert.deepEqual(parseKey(bad), { ok: false, reason: 'malformed_key' }, bad);
    }
  });
});
