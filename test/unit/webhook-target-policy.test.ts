import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadConfig } from '../../src/config';
import {
  allowListEntryProblem,
  checkResolvedTarget,
  checkWebhookTarget,
  webhookTargetPolicy,
  type TargetRefusal,
} from '../../src/domain/webhook-target-policy';

const none = webhookTargetPolicy();

/** [url, refusal or 'allowed'] checked with no allow-list. */
const urls: [string, TargetRefusal | 'allowed'][] = [
  // Public targets.
  ['https://example.com/hooks', 'allowed'],
  ['http://hooks.example.com:8080/x?y=1', 'allowed'],
  ['https://8.8.8.8/', 'allowed'],
  ['https://1.1.1.1:8443/', 'allowed'],
  ['https://[2606:4700:4700::1111]/', 'allowed'],
  ['https://[2a00:1450:4001:82a::200e]/', 'allowed'],
  ['https://[::ffff:8.8.8.8]/', 'allowed'],
  ['https://[64:ff9b::808:808]/', 'allowed'],
  ['https://[2002:808:808::1]/', 'allowed'],
  ['https://localhost.example.com/', 'allowed'],
  // Loopback in every spelling.
  ['http://127.0.0.1:4010/_sim/faults', 'loopback'],
  ['http://127.1/', 'loopback'],
  ['http://127.255.255.254/', 'loopback'],
  ['http://2130706433/', 'loopback'],
  ['http://0x7f.1/', 'loopback'],
  ['http://0x7f000001/', 'loopback'],
  ['http://0177.0.0.1/', 'loopback'],
  ['http://0x7f.0x0.0.1/', 'loopback'],
  ['http://127.0.0.1./', 'loopback'],
  ['http://[::1]:5432/', 'loopback'],
  ['http://[0:0:0:0:0:0:0:1]/', 'loopback'],
  ['http://[::ffff:127.0.0.1]/', 'loopback'],
  ['http://[::ffff:7f00:1]/', 'loopback'],
  ['http://[::ffff:0:7f00:1]/', 'loopback'],
  ['http://[64:ff9b::127.0.0.1]/', 'loopback'],
  ['http://[64:ff9b::7f00:1]/', 'loopback'],
  ['http://[2002:7f00:1::]/', 'loopback'],
  // Userinfo does not change the host.
  ['http://evil@127.0.0.1/', 'credentials_in_url'],
  ['http://example.com@127.0.0.1/', 'credentials_in_url'],
  ['http://user:pass@example.com/', 'credentials_in_url'],
  // Unspecified: connecting to it reaches this machine.
  ['http://0.0.0.0/', 'unspecified'],
  ['http://0/', 'unspecified'],
  ['http://0.1.2.3/', 'unspecified'],
  ['http://[::]/', 'unspecified'],
  ['http://[::ffff:0.0.0.0]/', 'unspecified'],
  // Private and shared networks.
  ['http://10.0.0.1/', 'private'],
  ['http://10.255.255.255/', 'private'],
  ['http://172.16.0.1/', 'private'],
  ['http://172.31.255.1/', 'private'],
  ['http://192.168.1.1/', 'private'],
  ['http://0xc0a80101/', 'private'],
  ['http://[::ffff:10.0.0.1]/', 'private'],
  ['http://[64:ff9b::a00:1]/', 'private'],
  ['http://[2002:c0a8:101::1]/', 'private'],
  ['http://100.64.0.1/', 'carrier_grade_nat'],
  ['http://100.127.255.254/', 'carrier_grade_nat'],
  ['http://[fc00::1]/', 'unique_local'],
  ['http://[fdff:ffff::1]/', 'unique_local'],
  ['http://[fec0::1]/', 'private'],
  // Link-local.
  ['http://169.254.1.1/', 'link_local'],
  ['http://[fe80::1]/', 'link_local'],
  ['http://[febf::1]/', 'link_local'],
  // Metadata endpoints, however written.
  ['http://169.254.169.254/latest/meta-data/', 'metadata'],
  ['http://2852039166/', 'metadata'],
  ['http://0xa9fea9fe/', 'metadata'],
  ['http://[::ffff:169.254.169.254]/', 'metadata'],
  ['http://[fd00:ec2::254]/', 'metadata'],
  ['http://169.254.170.2/v2/credentials', 'metadata'],
  ['http://100.100.100.200/', 'metadata'],
  ['http://192.0.0.192/', 'metadata'],
  ['http://metadata.google.internal/computeMetadata/v1/', 'metadata'],
  ['http://metadata.google.internal./', 'metadata'],
  ['http://METADATA.GOOGLE.INTERNAL/', 'metadata'],
  ['http://metadata/', 'metadata'],
  ['http://metadata.goog/', 'metadata'],
  // Multicast and broadcast.
  ['http://224.0.0.1/', 'multicast'],
  ['http://239.255.255.250/', 'multicast'],
  ['http://[ff02::1]/', 'multicast'],
  ['http://[ff0e::1]/', 'multicast'],
  ['http://255.255.255.255/', 'broadcast'],
  // Reserved and special-purpose.
  ['http://192.0.0.8/', 'reserved'],
  ['http://192.0.2.1/', 'reserved'],
  ['http://198.18.0.1/', 'reserved'],
  ['http://198.19.255.254/', 'reserved'],
  ['http://198.51.100.7/', 'reserved'],
  ['http://203.0.113.9/', 'reserved'],
  ['http://240.0.0.1/', 'reserved'],
  ['http://[2001:db8::1]/', 'reserved'],
  ['http://[100::1]/', 'reserved'],
  ['http://[2001::1]/', 'reserved'],
  ['http://[64:ff9b:1::a00:1]/', 'reserved'],
  ['http://[::127.0.0.1]/', 'reserved'],
  ['http://[::8.8.8.8]/', 'reserved'],
  // Names of this machine or of internal networks.
  ['http://localhost:3000/admin', 'internal_hostname'],
  ['http://LOCALHOST/', 'internal_hostname'],
  ['http://localhost./', 'internal_hostname'],
  ['http://localhost../', 'internal_hostname'],
  ['http://%6c%6fcalhost/', 'internal_hostname'],
  ['http://api.localhost/', 'internal_hostname'],
  ['http://a.b.localhost./', 'internal_hostname'],
  ['http://postgres:5432/', 'internal_hostname'],
  ['http://printer.local/', 'internal_hostname'],
  ['http://db.corp.internal/', 'internal_hostname'],
  ['http://router.home.arpa/', 'internal_hostname'],
  ['http://box.localdomain/', 'internal_hostname'],
  // Other schemes.
  ['ftp://example.com/x', 'unsupported_scheme'],
  ['file:///etc/passwd', 'unsupported_scheme'],
  ['gopher://127.0.0.1:6379/_INFO', 'unsupported_scheme'],
  ['ws://example.com/', 'unsupported_scheme'],
  ['not a url', 'invalid_url'],
];

const outcome = (v: ReturnType<typeof checkWebhookTarget>) => (v.allowed ? 'allowed' : v.refusal);

describe('webhook target policy: URLs as written', () => {
  for (const [url, expected] of urls) {
    test(`${url} → ${expected}`, () => {
      const verdict = checkWebhookTarget(url, none);
      assert.equal(outcome(verdict), expected, JSON.stringify(verdict));
      if (!verdict.allowed) assert.ok(verdict.detail.length > 0);
    });
  }

  test('the detail names the address an IPv6 form embeds', () => {
    const verdict = checkWebhookTarget('http://[::ffff:127.0.0.1]/', none);
    assert.deepEqual(verdict, {
      allowed: false,
      refusal: 'loopback',
      detail: 'the host is ::ffff:7f00:1, which embeds 127.0.0.1, a loopback address',
    });
    assert.deepEqual(checkWebhookTarget('http://0x7f.1/', none), {
      allowed: false,
      refusal: 'loopback',
      detail: 'the host is 127.0.0.1, a loopback address',
    });
  });

  test('a parsed URL is checked like its string', () => {
    assert.equal(outcome(checkWebhookTarget(new URL('http://0177.0.0.1/'), none)), 'loopback');
  });
});

describe('webhook target policy: resolved addresses', () => {
  const cases: [string, string[], TargetRefusal | 'allowed'][] = [
    ['hooks.example.com', ['93.184.215.14'], 'allowed'],
    ['hooks.example.com', ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'], 'allowed'],
    ['rebind.example.com', ['127.0.0.1'], 'loopback'],
    ['rebind.example.com', ['::1'], 'loopback'],
    ['rebind.example.com', ['::ffff:127.0.0.1'], 'loopback'],
    // Every address counts: the client may connect to any of them.
    ['mixed.example.com', ['93.184.215.14', '10.0.0.7'], 'private'],
    ['mixed.example.com', ['2606:2800:21f:cb07:6820:80da:af6b:8b2c', 'fd12::1'], 'unique_local'],
    ['aws.example.com', ['169.254.169.254'], 'metadata'],
    ['aws6.example.com', ['fd00:ec2::254'], 'metadata'],
    ['odd.example.com', ['not-an-ip'], 'invalid_url'],
  ];
  for (const [host, addresses, expected] of cases) {
    test(`${host} → ${addresses.join(', ')} → ${expected}`, () => {
      assert.equal(outcome(checkResolvedTarget(host, addresses, none)), expected);
    });
  }

  test('the detail names the host and the address', () => {
    assert.deepEqual(checkResolvedTarget('rebind.example.com', ['8.8.8.8', '127.0.0.1'], none), {
      allowed: false,
      refusal: 'loopback',
      detail: 'rebind.example.com resolves to 127.0.0.1, a loopback address',
    });
  });
});

describe('webhook target policy: allow-list', () => {
  const dev = webhookTargetPolicy(['localhost', '127.0.0.1', '::1', '10.1.0.0/16', 'Receiver.', '169.254.0.0/16']);

  const listed: [string, TargetRefusal | 'allowed'][] = [
    ['http://localhost:3000/hooks', 'allowed'],
    ['http://localhost.:3000/hooks', 'allowed'],
    ['http://127.0.0.1:4010/', 'allowed'],
    ['http://0x7f000001:4010/', 'allowed'],
    ['http://[::ffff:127.0.0.1]/', 'allowed'],
    ['http://[::1]:8080/', 'allowed'],
    ['http://10.1.200.3/', 'allowed'],
    ['http://receiver:9000/', 'allowed'],
    ['http://169.254.10.10/', 'allowed'],
    // Only what is listed.
    ['http://127.0.0.2/', 'loopback'],
    ['http://10.2.0.1/', 'private'],
    ['http://api.localhost/', 'internal_hostname'],
    ['http://other:9000/', 'internal_hostname'],
    ['http://evil@localhost/', 'credentials_in_url'],
    // A listed range never opens a metadata endpoint.
    ['http://169.254.169.254/', 'metadata'],
  ];
  const everything = webhookTargetPolicy(['0.0.0.0/0', '::/0']);
  test('not even an allow-list of everything opens a metadata endpoint', () => {
    assert.equal(outcome(checkWebhookTarget('http://10.0.0.1/', everything)), 'allowed');
    for (const url of [
      'http://169.254.169.254/',
      'http://[::ffff:169.254.169.254]/',
      'http://[64:ff9b::a9fe:a9fe]/',
      'http://[fd00:ec2::254]/',
    ]) {
      assert.equal(outcome(checkWebhookTarget(url, everything)), 'metadata', url);
    }
  });
  for (const [url, expected] of listed) {
    test(`${url} → ${expected}`, () => assert.equal(outcome(checkWebhookTarget(url, dev)), expected));
  }

  test('a listed name is trusted with what it resolves to, except a metadata address', () => {
    assert.equal(outcome(checkResolvedTarget('localhost', ['127.0.0.1', '::1'], dev)), 'allowed');
    assert.equal(outcome(checkResolvedTarget('receiver', ['172.18.0.5'], dev)), 'allowed');
    assert.equal(outcome(checkResolvedTarget('receiver', ['169.254.169.254'], dev)), 'metadata');
    assert.equal(outcome(checkResolvedTarget('receiver', ['::ffff:169.254.169.254'], dev)), 'metadata');
  });

  test('a listed address is allowed when a public name resolves to it; others are not', () => {
    assert.equal(outcome(checkResolvedTarget('dev.example.com', ['10.1.2.3'], dev)), 'allowed');
    assert.equal(outcome(checkResolvedTarget('dev.example.com', ['10.1.2.3', '10.9.9.9'], dev)), 'private');
  });

  test('without entries nothing internal is allowed', () => {
    assert.equal(outcome(checkWebhookTarget('http://localhost/', webhookTargetPolicy([]))), 'internal_hostname');
    assert.equal(outcome(checkResolvedTarget('localhost', ['127.0.0.1'], webhookTargetPolicy([]))), 'loopback');
  });

  test('entries are host names, IP addresses or CIDR ranges; metadata endpoints cannot be listed', () => {
    for (const ok of ['localhost', 'receiver', 'hooks.dev.internal', '127.0.0.1', '::1', '10.0.0.0/8', 'fd00::/8', ' 192.168.1.0/24 ']) {
      assert.equal(allowListEntryProblem(ok), undefined, ok);
    }
    for (const bad of [
      '10.0.0.0/33',
      'localhost:3000',
      'http://localhost',
      'a b',
      '10.0.0.1/x',
      '169.254.169.254',
      'fd00:ec2::254',
      'metadata.google.internal',
    ]) {
      assert.ok(allowListEntryProblem(bad), bad);
    }
    assert.throws(() => webhookTargetPolicy(['localhost:3000']), /Invalid webhook allow-list entry/);
  });
});

describe('WEBHOOK_ALLOWED_TARGETS', () => {
  test('a comma-separated list of entries; unset is empty', () => {
    assert.deepEqual(loadConfig({ WEBHOOK_ALLOWED_TARGETS: ' localhost, 127.0.0.1 ,::1,, 10.1.0.0/16' }).WEBHOOK_ALLOWED_TARGETS, [
      'localhost',
      '127.0.0.1',
      '::1',
      '10.1.0.0/16',
    ]);
    assert.deepEqual(loadConfig({}).WEBHOOK_ALLOWED_TARGETS, []);
  });

  test('an invalid entry stops the start, naming the variable and the entry', () => {
    assert.throws(
      () => loadConfig({ WEBHOOK_ALLOWED_TARGETS: 'localhost,localhost:3000' }),
      /WEBHOOK_ALLOWED_TARGETS: "localhost:3000" is neither/,
    );
    assert.throws(
      () => loadConfig({ WEBHOOK_ALLOWED_TARGETS: '169.254.169.254' }),
      /WEBHOOK_ALLOWED_TARGETS: 169\.254\.169\.254 is a cloud metadata endpoint/,
    );
  });
});
