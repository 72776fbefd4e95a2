import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { generateWebhookSecret, signWebhook, verifyWebhook } from '../../src/webhooks/signature';

const secret = 'whsec_test_secret_0123456789abcdef';
const body = '{"id":"evt"}';
const at = new Date('2026-03-15T12:00:00Z');
const later = (seconds: number) => new Date(at.getTime() + seconds * 1000);

describe('webhook signatures', () => {
  test('the header is t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>', () => {
    // Computed independently: python3 -c 'import hmac,hashlib; print(hmac.new(secret, b"1773576000.{\"id\":\"evt\"}", hashlib.sha256).hexdigest())'
    // Milliseconds are dropped, not rounded.
    assert.equal(
      signWebhook(secret, body, new Date('2026-03-15T12:00:00.750Z')),
      't=1773576000,v1=5d6c711ed6189ff8ff2c2bc25a3a5a5ccdb87cc98d9749efd0a0f1a651acb630',
    );
  });

  test('a signature verifies with its secret and body, within the tolerance either way', () => {
    const header = signWebhook(secret, body, at);
    assert.deepEqual(verifyWebhook({ secret, body, header, now: at }), { ok: true, timestamp: at });
    assert.equal(verifyWebhook({ secret, body, header, now: later(300) }).ok, true);
    assert.equal(verifyWebhook({ secret, body, header, now: later(-300) }).ok, true);
  });

  test('another body, another secret or a tampered signature is a mismatch', () => {
    const header = signWebhook(secret, body, at);
    assert.deepEqual(verifyWebhook({ secret, body: '{"id":"evu"}', header, now: at }), { ok: false, reason: 'signature_mismatch' });
    assert.deepEqual(verifyWebhook({ secret: `${secret}x`, body, header, now: at }), { ok: false, reason: 'signature_mismatch' });
    const flipped = header.slice(0, -1) + (header.endsWith('0') ? '1' : '0');
    assert.deepEqual(verifyWebhook({ secret, body, header: flipped, now: at }), { ok: false, reason: 'signature_mismatch' });
  });

  test('re-dating a captured request breaks its signature; replaying it late is out of tolerance', () => {
    const header = signWebhook(secret, body, at);
    const redated = header.replace('t=1773576000', 't=1773576600');
    assert.deepEqual(verifyWebhook({ secret, body, header: redated, now: later(600) }), { ok: false, reason: 'signature_mismatch' });
    assert.deepEqual(verifyWebhook({ secret, body, header, now: later(301) }), { ok: false, reason: 'timestamp_out_of_tolerance' });
    assert.deepEqual(verifyWebhook({ secret, body, header, now: later(-301) }), { ok: false, reason: 'timestamp_out_of_tolerance' });
    assert.equal(verifyWebhook({ secret, body, header, now: later(3600), toleranceSeconds: 3600 }).ok, true);
  });

  test('while a secret rolls, any listed secret and any v1 entry may match; unknown schemes are ignored', () => {
    const next = generateWebhookSecret();
    const [t, v1] = signWebhook(secret, body, at).split(',');
    const nextV1 = signWebhook(next, body, at).split(',')[1];
    const header = `${t},${nextV1},${v1},v2=whatever`;
    assert.equal(verifyWebhook({ secret, body, header, now: at }).ok, true);
    assert.equal(verifyWebhook({ secret: next, body, header, now: at }).ok, true);
    assert.equal(
      verifyWebhook({ secret: ['whsec_retired_secret_0000000000000000', secret], body, header: `${t},${v1}`, now: at }).ok,
      true,
    );
  });

  test('malformed headers are rejected before any HMAC', () => {
    const v1 = `v1=${'a'.repeat(64)}`;
    for (const header of [
      undefined,
      '',
      't=1773576000',
      v1,
      `t=abc,${v1}`,
      `t=1773576000,v1=xyz`,
      `t=1773576000,v1=${'a'.repeat(63)}`,
      `t=1773576000;${v1}`,
      'garbage',
    ]) {
      assert.deepEqual(verifyWebhook({ secret, body, header, now: at }), { ok: false, reason: 'malformed_header' }, String(header));
    }
  });

  test('generated secrets carry 256 random bits behind a recognisable prefix', () => {
    const a = generateWebhookSecret();
    assert.match(a, /^whsec_[A-Za-z0-9_-]{43}$/);
    assert.notEqual(a, generateWebhookSecret());
  });
});
