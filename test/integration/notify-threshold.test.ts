import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { pino } from 'pino';
import { createNotifyThreshold, type NotifyThresholdDeps, type NotifyThresholdInput } from '../../src/activities/notify-threshold';
import { createApp } from '../../src/api/app';
import { authenticate } from '../../src/api/authenticate';
import { createApiMetrics } from '../../src/api/metrics';
import { buildOpenApiDocument } from '../../src/api/openapi';
import { webhookEndpointsRouter } from '../../src/api/routes/webhooks';
import { unwrap } from '../../src/api/refusal';
import { createSubscription } from '../../src/subscriptions/store';
import { webhookTargetPolicy, type WebhookTargetPolicy } from '../../src/domain/webhook-target-policy';
import { CustomerService } from '../../src/customers/service';
import { createCustomer } from '../../src/customers/store';
import { createMeter } from '../../src/meters/store';
import { startKeys } from '../../src/keys/keys';
import { WebhookEndpointService } from '../../src/webhooks/service';
import { generateWebhookSecret, verifyWebhook, type VerifyResult } from '../../src/webhooks/signature';
import type { Resolve } from '../../src/webhooks/target';
import type { ThresholdCrossedPayload } from '../../src/webhooks/threshold-crossed';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { listen } from '../support/http';
import { testPeppers } from '../support/keys-app';

/** What a real receiver does: verifies the signature on the raw body, then answers as scripted. */
interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  verified: VerifyResult;
}
type Answer = { status: number; location?: string } | { delayMs: number };

class Receiver {
  readonly received: Received[] = [];
  /** Answers for the next requests, in order; afterwards 204. A failed verification is a 401 whatever is scripted. */
  readonly script: Answer[] = [];
  /** TCP connections accepted: a refused target must not even be connected to. */
  connections = 0;
  private constructor(
    private readonly server: Server,
    readonly url: string,
    /** The secret it verifies with: the endpoint's, as shown once at creation. */
    public secret: string,
  ) {}

  static async start(now: () => Date, secret = generateWebhookSecret()): Promise<Receiver> {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const receiver = new Receiver(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, secret);
    server.on('connection', () => receiver.connections++);
    server.on('request', (req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += String(chunk)));
      req.on('end', () => receiver.answer(req, res, body, now));
    });
    return receiver;
  }

  private answer(req: IncomingMessage, res: ServerResponse, body: string, now: () => Date): void {
    const header = req.headers['meterflow-signature'];
    const verified = verifyWebhook({ secret: this.secret, body, header: Array.isArray(header) ? header[0] : header, now: now() });
    this.received.push({ headers: req.headers, body, verified });
    if (!verified.ok) return void res.writeHead(401).end(verified.reason);
    const answer = this.script.shift() ?? { status: 204 };
    if ('delayMs' in answer) return void setTimeout(() => res.writeHead(204).end(), answer.delayMs).unref();
    res.writeHead(answer.status, answer.location ? { location: answer.location } : {}).end();
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((done) => this.server.close(() => done()));
  }
}

const NOW = new Date('2026-03-15T12:00:00Z');
let now = NOW;
const clock = { now: () => new Date(now) };
const PERIOD_START = '2026-03-01T00:00:00.000Z';
// Long enough that a loaded machine never times out a local receiver that answers at once.
const TIMEOUT_MS = 1500;
/** The receivers listen on 127.0.0.1, which only an explicit allow-list opens, as for local development. */
const LOCAL_RECEIVERS = webhookTargetPolicy(['127.0.0.1']);

let db: TestDatabase;
const receivers: Receiver[] = [];
const notifyThreshold = (deps: Partial<NotifyThresholdDeps> = {}) =>
  createNotifyThreshold({ pool: db.pool, clock, timeoutMs: TIMEOUT_MS, targets: LOCAL_RECEIVERS, ...deps });

before(async () => {
  db = await createTestDatabase();
  await createMeter(db.pool, { code: 'api_calls', name: 'API calls', event_type: 'api_call', aggregation: 'count', filter: {} }, 'system');
  await db.pool.query(
    `insert into plans (code, name, currency, charges, billing_interval) values ('basic', 'Basic', 'USD', '[]', '{"kind": "calendar_month"}')`,
  );
});
after(async () => {
  for (const r of receivers) await r.close();
  await db.drop();
});

let customers = 0;
/** A new customer with an active subscription; its endpoints are its own. */
async function subscribe(): Promise<{ customer: string; customerId: string; subscriptionId: string }> {
  const customer = `cust-${++customers}`;
  const { customer: created } = await createCustomer(db.pool, { external_id: customer, name: customer, currency: 'USD' }, 'system');
  const result = await createSubscription(db.pool, {
    customerId: created.id,
    planCode: 'basic',
    anchor: new Date('2026-01-01T00:00:00Z'),
    actor: 'system',
  });
  assert.ok(result.created);
  return { customer, customerId: created.id, subscriptionId: result.subscription.id };
}

async function receiver(secret?: string): Promise<Receiver> {
  const r = await Receiver.start(clock.now, secret);
  receivers.push(r);
  return r;
}

async function addEndpoint(customerId: string | null, url: string, secret: string): Promise<string> {
  const { rows } = await db.pool.query<{ id: string }>(
    'insert into webhook_endpoints (customer_id, url, secret) values ($1, $2, $3) returning id',
    [customerId, url, secret],
  );
  return rows[0]!.id;
}

const crossing = (s: { customer: string; subscriptionId: string }, threshold = '80%'): NotifyThresholdInput => ({
  subscriptionId: s.subscriptionId,
  customer: s.customer,
  meter: 'api_calls',
  periodStart: PERIOD_START,
  threshold,
  usage: '812',
});

interface Row {
  id: string;
  kind: string;
  status: string;
  attempts: number;
  last_error: string | null;
  last_attempt_at: Date | null;
  delivered_at: Date | null;
  created_at: Date;
  payload: ThresholdCrossedPayload;
}
const rowsOf = async (subscriptionId: string) =>
  (await db.pool.query<Row>('select * from notifications where subscription_id = $1 order by created_at', [subscriptionId])).rows;

/** Runs the activity expecting it to throw an ApplicationFailure, and returns it. */
async function failure(run: Promise<void>): Promise<ApplicationFailure> {
  const err = await run.then(
    () => assert.fail('expected the activity to fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ApplicationFailure, String(err));
  return err;
}

describe('notifyThreshold', () => {
  test('delivers one signed notification; running the activity again sends nothing more', async () => {
    const s = await subscribe();
    const r = await receiver();
    await addEndpoint(s.customerId, r.url, r.secret);
    const notify = notifyThreshold();

    await notify(crossing(s));
    await notify(crossing(s));

    const [row, ...more] = await rowsOf(s.subscriptionId);
    assert.ok(row);
    assert.equal(more.length, 0);
    assert.equal(row.kind, 'threshold_crossed');
    assert.equal(row.status, 'delivered');
    assert.equal(row.attempts, 1);
    assert.equal(row.last_error, null);
    assert.deepEqual([row.created_at, row.last_attempt_at, row.delivered_at], [NOW, NOW, NOW]);

    assert.equal(r.received.length, 1);
    const [request] = r.received;
    assert.ok(request?.verified.ok);
    assert.equal(request.headers['content-type'], 'application/json');
    assert.equal(request.headers['meterflow-event-id'], row.id);
    assert.match(String(request.headers['meterflow-signature']), /^t=1773576000,v1=[0-9a-f]{64}$/);
    const expected: ThresholdCrossedPayload = {
      id: row.id,
      type: 'threshold_crossed',
      created_at: NOW.toISOString(),
      data: {
        subscription_id: s.subscriptionId,
        customer: s.customer,
        meter: 'api_calls',
        period_start: PERIOD_START,
        threshold: '80%',
        usage: '812',
      },
    };
    assert.deepEqual(JSON.parse(request.body), expected);
    assert.deepEqual(row.payload, expected);
  });

  test('each threshold and each period is its own notification', async () => {
    const s = await subscribe();
    const r = await receiver();
    await addEndpoint(s.customerId, r.url, r.secret);
    const notify = notifyThreshold();
    await notify(crossing(s, '80%'));
    await notify(crossing(s, '100%'));
    await notify({ ...crossing(s, '80%'), periodStart: '2026-04-01T00:00:00.000Z' });
    // The same instant written another way is the same period.
    await notify({ ...crossing(s, '80%'), periodStart: '2026-03-01T00:00:00Z' });
    const rows = await rowsOf(s.subscriptionId);
    assert.equal(rows.length, 3);
    assert.equal(new Set(r.received.map((q) => q.headers['meterflow-event-id'])).size, 3);
    assert.ok(rows.every((row) => row.status === 'delivered'));
  });

  test('concurrent executions of the same crossing share one row', async () => {
    const s = await subscribe();
    const r = await receiver();
    await addEndpoint(s.customerId, r.url, r.secret);
    const notify = notifyThreshold();
    await Promise.all(Array.from({ length: 5 }, () => notify(crossing(s))));
    const rows = await rowsOf(s.subscriptionId);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.status, 'delivered');
    // At least once: overlapping executions may each send, always with the same event id.
    assert.ok(r.received.length >= 1);
    assert.deepEqual(new Set(r.received.map((q) => q.headers['meterflow-event-id'])), new Set([rows[0]?.id]));
  });

  test('a 500 is retryable; the retry delivers the same event and the row ends delivered after 2 attempts', async () => {
    const s = await subscribe();
    const r = await receiver();
    await addEndpoint(s.customerId, r.url, r.secret);
    r.script.push({ status: 500 });
    const notify = notifyThreshold();

    const err = await failure(notify(crossing(s)));
    assert.equal(err.nonRetryable, false);
    assert.equal(err.type, 'WebhookDeliveryFailed');
    let [row] = await rowsOf(s.subscriptionId);
    assert.equal(row?.status, 'pending');
    assert.equal(row?.attempts, 1);
    assert.match(row?.last_error ?? '', /HTTP 500$/);
    assert.equal(row?.delivered_at, null);

    now = new Date(NOW.getTime() + 2000);
    try {
      await notify(crossing(s));
    } finally {
      now = NOW;
    }
    const rows = await rowsOf(s.subscriptionId);
    assert.equal(rows.length, 1);
    [row] = rows;
    assert.equal(row?.status, 'delivered');
    assert.equal(row?.attempts, 2);
    assert.deepEqual(row?.delivered_at, new Date(NOW.getTime() + 2000));
    assert.match(row?.last_error ?? '', /HTTP 500$/, 'the last error stays: it says why it took two attempts');
    assert.equal(r.received.length, 2);
    assert.equal(r.received[0]?.body, r.received[1]?.body);
    assert.equal(r.received[0]?.headers['meterflow-event-id'], r.received[1]?.headers['meterflow-event-id']);
  });

  test('a 400 is non-retryable and marks the notification failed; 408 and 429 are retried', async () => {
    const s = await subscribe();
    const r = await receiver();
    await addEndpoint(s.customerId, r.url, r.secret);
    const notify = notifyThreshold();

    r.script.push({ status: 400 });
    const err = await failure(notify(crossing(s, '80%')));
    assert.equal(err.nonRetryable, true);
    assert.equal(err.type, 'WebhookRejected');

    r.script.push({ status: 408 }, { status: 429 });
    assert.equal((await failure(notify(crossing(s, '100%')))).nonRetryable, false);
    assert.equal((await failure(notify(crossing(s, '100%')))).nonRetryable, false);
    await notify(crossing(s, '100%'));

    const rows = await rowsOf(s.subscriptionId);
    assert.deepEqual(
      Object.fromEntries(
        rows.map((row) => [row.payload.data.threshold, [row.status, row.attempts, row.last_error?.replace(/^endpoint \S+: /, '')]]),
      ),
      {
        '80%': ['failed', 1, 'HTTP 400'],
        '100%': ['delivered', 3, 'HTTP 429'],
      },
    );
  });

  test('a slow endpoint times out and is retried', async () => {
    const s = await subscribe();
    const r = await receiver();
    await addEndpoint(s.customerId, r.url, r.secret);
    r.script.push({ delayMs: TIMEOUT_MS * 5 });
    const notify = notifyThreshold();

    const started = Date.now();
    const err = await failure(notify(crossing(s)));
    assert.ok(Date.now() - started < TIMEOUT_MS * 4, 'gave up at the timeout');
    assert.equal(err.nonRetryable, false);
    const [row] = await rowsOf(s.subscriptionId);
    assert.equal(row?.status, 'pending');
    assert.match(row?.last_error ?? '', new RegExp(`timed out after ${TIMEOUT_MS} ms$`));

    await notify(crossing(s));
    assert.equal((await rowsOf(s.subscriptionId))[0]?.status, 'delivered');
  });

  test('an unreachable endpoint is retried and says why', async () => {
    const s = await subscribe();
    const r = await receiver();
    await r.close();
    await addEndpoint(s.customerId, r.url, r.secret);
    const err = await failure(notifyThreshold()(crossing(s)));
    assert.equal(err.nonRetryable, false);
    assert.match((await rowsOf(s.subscriptionId))[0]?.last_error ?? '', /request failed: .*ECONNREFUSED/);
  });

  test('without an endpoint the notification is recorded as no_endpoint, and nothing is retried', async () => {
    const s = await subscribe();
    const other = await subscribe();
    const r = await receiver();
    // Another customer's endpoint and a disabled one are not this customer's.
    await addEndpoint(other.customerId, r.url, r.secret);
    const disabled = await addEndpoint(s.customerId, r.url, r.secret);
    await db.pool.query('update webhook_endpoints set disabled_at = now() where id = $1', [disabled]);

    await notifyThreshold()(crossing(s));
    const [row] = await rowsOf(s.subscriptionId);
    assert.equal(row?.status, 'no_endpoint');
    assert.equal(row?.attempts, 0);
    assert.equal(r.received.length, 0);
  });

  test('a receiver holding another secret rejects the request as a signature mismatch', async () => {
    const s = await subscribe();
    const r = await receiver();
    await addEndpoint(s.customerId, r.url, generateWebhookSecret());
    const err = await failure(notifyThreshold()(crossing(s)));
    assert.deepEqual(r.received[0]?.verified, { ok: false, reason: 'signature_mismatch' });
    // The receiver's 401 is a 4xx: retrying the same request cannot fix it.
    assert.equal(err.nonRetryable, true);
    assert.equal((await rowsOf(s.subscriptionId))[0]?.status, 'failed');
  });

  test("the customer's endpoints and the global ones each get it; a retry goes only to those that failed", async () => {
    const s = await subscribe();
    const own = await receiver();
    const global = await receiver();
    await addEndpoint(s.customerId, own.url, own.secret);
    await addEndpoint(null, global.url, global.secret);
    global.script.push({ status: 503 });
    const notify = notifyThreshold();
    try {
      await failure(notify(crossing(s)));
      await notify(crossing(s));
    } finally {
      await db.pool.query('update webhook_endpoints set disabled_at = now() where customer_id is null');
    }
    assert.equal(own.received.length, 1);
    assert.equal(global.received.length, 2);
    assert.ok([...own.received, ...global.received].every((q) => q.verified.ok));
    const [row] = await rowsOf(s.subscriptionId);
    assert.equal(row?.status, 'delivered');
    assert.equal(row?.attempts, 2);
  });

  test('runs in a Temporal activity context', async () => {
    const s = await subscribe();
    const r = await receiver();
    await addEndpoint(s.customerId, r.url, r.secret);
    await new MockActivityEnvironment().run(notifyThreshold(), crossing(s));
    assert.equal((await rowsOf(s.subscriptionId))[0]?.status, 'delivered');
    assert.equal(r.received.length, 1);
  });
});

interface Api {
  call(method: string, path: string, key: string, body?: unknown): Promise<{ status: number; headers: Headers; body: any }>;
  close(): Promise<void>;
}

/** The webhook endpoints API with the given target policy, served over real HTTP. */
async function startApi(targets: WebhookTargetPolicy): Promise<Api> {
  const logger = pino({ level: 'silent' });
  const keys = await startKeys({
    pool: db.pool,
    databaseUrl: db.url,
    peppers: testPeppers(),
    clock,
    logger,
    cache: { ttlSeconds: 60, maxEntries: 100 },
    defaults: { ratePerSecond: 1000, burst: 1000 },
  });
  const server = await listen(
    createApp({
      logger,
      readiness: {},
      authenticate: authenticate({ ...keys, logger }),
      routers: [
        webhookEndpointsRouter({
          webhooks: new WebhookEndpointService({ pool: db.pool, clock, customers: new CustomerService(db.pool), targets }),
        }),
      ],
      metrics: createApiMetrics(),
    }),
  );
  return {
    call: async (method, path, key, body) => {
      const res = await fetch(`${server.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, headers: res.headers, body: await res.json() };
    },
    close: async () => {
      await server.close();
      await keys.close();
    },
  };
}

/** A key with billing:admin, restricted to `customer` when given. */
async function adminKey(customer?: string): Promise<string> {
  const keys = await startKeys({
    pool: db.pool,
    databaseUrl: db.url,
    peppers: testPeppers(),
    clock,
    logger: pino({ level: 'silent' }),
    cache: { ttlSeconds: 60, maxEntries: 100 },
    defaults: { ratePerSecond: 1000, burst: 1000 },
  });
  try {
    return unwrap(
      await keys.service.create('cli', {
        name: customer ?? 'admin',
        environment: 'test',
        scopes: ['billing:admin'],
        ...(customer ? { customer } : {}),
      }),
    ).secret;
  } finally {
    await keys.close();
  }
}

describe('webhook endpoints API', () => {
  let api: Api;
  let admin: string;

  before(async () => {
    api = await startApi(LOCAL_RECEIVERS);
    admin = await adminKey();
  });
  after(() => api.close());

  test('an endpoint registered through the API receives signed notifications until it is disabled', async () => {
    const s = await subscribe();
    const r = await receiver();
    const created = await api.call('POST', '/v1/webhook-endpoints', admin, { url: r.url, customer: s.customer });
    assert.equal(created.status, 201);
    assert.equal(created.headers.get('cache-control'), 'no-store');
    assert.match(created.body.secret, /^whsec_/);
    assert.deepEqual(
      { ...created.body, secret: undefined },
      {
        id: created.body.id,
        url: r.url,
        customer: s.customer,
        status: 'active',
        created_at: NOW.toISOString(),
        disabled_at: null,
        secret: undefined,
      },
    );
    // The receiver holds the secret shown once; it is never shown again.
    r.secret = created.body.secret;
    const read = await api.call('GET', `/v1/webhook-endpoints/${created.body.id}`, admin);
    assert.equal(read.status, 200);
    assert.equal('secret' in read.body, false);
    const listed = await api.call('GET', '/v1/webhook-endpoints?limit=500', admin);
    assert.ok(listed.body.data.some((e: { id: string; secret?: string }) => e.id === created.body.id && e.secret === undefined));

    await notifyThreshold()(crossing(s, '80%'));
    assert.ok(r.received[0]?.verified.ok);

    const disabled = await api.call('DELETE', `/v1/webhook-endpoints/${created.body.id}`, admin);
    assert.equal(disabled.status, 200);
    assert.equal(disabled.body.status, 'disabled');
    assert.equal((await api.call('DELETE', `/v1/webhook-endpoints/${created.body.id}`, admin)).body.disabled_at, disabled.body.disabled_at);
    await notifyThreshold()(crossing(s, '100%'));
    assert.equal(r.received.length, 1);
    const statuses = Object.fromEntries((await rowsOf(s.subscriptionId)).map((row) => [row.payload.data.threshold, row.status]));
    assert.deepEqual(statuses, { '80%': 'delivered', '100%': 'no_endpoint' });

    const { rows: audit } = await db.pool.query<{ action: string; details: object }>(
      "select action, details from audit_log where subject_type = 'webhook_endpoint' and subject_id = $1 order by id",
      [created.body.id],
    );
    assert.deepEqual(
      audit.map((a) => a.action),
      ['webhook_endpoint.created', 'webhook_endpoint.disabled'],
    );
    assert.ok(!JSON.stringify(audit).includes(created.body.secret), 'the audit log never holds the secret');
  });

  test("a customer's key manages only its own endpoints and cannot register a global one", async () => {
    const mine = await subscribe();
    const theirs = await subscribe();
    const restricted = await adminKey(mine.customer);

    const own = await api.call('POST', '/v1/webhook-endpoints', restricted, { url: 'https://example.com/mine' });
    assert.equal(own.status, 201);
    assert.equal(own.body.customer, mine.customer);
    assert.equal(
      (await api.call('POST', '/v1/webhook-endpoints', restricted, { url: 'https://example.com/all', customer: null })).status,
      403,
    );
    // Another customer is answered like one that does not exist.
    const theirsEndpoint = await api.call('POST', '/v1/webhook-endpoints', restricted, {
      url: 'https://example.com/x',
      customer: theirs.customer,
    });
    assert.equal(theirsEndpoint.status, 422);
    assert.equal(theirsEndpoint.body.reason, 'unknown_customer');

    const global = await api.call('POST', '/v1/webhook-endpoints', admin, { url: 'https://example.com/all' });
    assert.equal(global.body.customer, null);
    await api.call('DELETE', `/v1/webhook-endpoints/${global.body.id}`, admin);
    assert.equal((await api.call('GET', `/v1/webhook-endpoints/${global.body.id}`, restricted)).status, 404);
    assert.equal((await api.call('DELETE', `/v1/webhook-endpoints/${global.body.id}`, restricted)).status, 404);
    const listed = await api.call('GET', '/v1/webhook-endpoints', restricted);
    assert.deepEqual(
      listed.body.data.map((e: { id: string }) => e.id),
      [own.body.id],
    );
  });

  test('invalid input is a 400 naming the field; an unknown customer is 422', async () => {
    for (const body of [{ url: 'ftp://example.com/x' }, { url: 'not a url' }, { url: 'https://example.com', extra: 1 }]) {
      const res = await api.call('POST', '/v1/webhook-endpoints', admin, body);
      assert.equal(res.status, 400, JSON.stringify(body));
    }
    const unknown = await api.call('POST', '/v1/webhook-endpoints', admin, { url: 'https://example.com/x', customer: 'nobody' });
    assert.equal(unknown.status, 422);
    assert.equal(unknown.body.reason, 'unknown_customer');
  });

  test('the routes are in the OpenAPI document', () => {
    const paths = buildOpenApiDocument().paths ?? {};
    assert.deepEqual(Object.keys(paths['/v1/webhook-endpoints'] ?? {}).sort(), ['get', 'post']);
    assert.deepEqual(Object.keys(paths['/v1/webhook-endpoints/{id}'] ?? {}).sort(), ['delete', 'get']);
  });
});

/** Plays DNS for names under .test, which never resolve for real, and records each lookup. */
function fakeDns(table: Record<string, string[]>): { resolve: Resolve; lookups: string[] } {
  const lookups: string[] = [];
  const resolve: Resolve = async (hostname) => {
    lookups.push(hostname);
    const addresses = table[hostname];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return { resolve, lookups };
}

describe('webhook targets (SSRF)', () => {
  let strict: Api;
  before(async () => {
    strict = await startApi(webhookTargetPolicy());
  });
  after(() => strict.close());

  const portOf = (r: Receiver) => new URL(r.url).port;
  const count = async () =>
    (
      await db.pool.query<{ endpoints: number; audited: number }>(
        "select (select count(*) from webhook_endpoints)::int as endpoints, (select count(*) from audit_log where action = 'webhook_endpoint.created')::int as audited",
      )
    ).rows[0];

  const forbidden: [string, string][] = [
    // The four from the report, then the same places spelled otherwise.
    ['http://127.0.0.1:4010/_sim/faults', 'loopback'],
    ['http://169.254.169.254/latest/meta-data/iam/security-credentials/', 'metadata'],
    ['http://[::1]:5432/', 'loopback'],
    ['http://localhost:3000/admin', 'internal_hostname'],
    ['http://2130706433/', 'loopback'],
    ['http://0x7f.1/', 'loopback'],
    ['http://0177.0.0.1/', 'loopback'],
    ['http://127.0.0.1./', 'loopback'],
    ['http://[::ffff:127.0.0.1]/', 'loopback'],
    ['http://[::ffff:7f00:1]/', 'loopback'],
    ['http://[64:ff9b::7f00:1]/', 'loopback'],
    ['http://[2002:c0a8:101::1]/', 'private'],
    ['http://0.0.0.0:3000/', 'unspecified'],
    ['http://[::]/', 'unspecified'],
    ['http://10.0.0.5/', 'private'],
    ['http://172.20.0.2/', 'private'],
    ['http://192.168.1.1/', 'private'],
    ['http://100.64.0.1/', 'carrier_grade_nat'],
    ['http://198.18.0.1/', 'reserved'],
    ['http://192.0.0.8/', 'reserved'],
    ['http://240.0.0.1/', 'reserved'],
    ['http://255.255.255.255/', 'broadcast'],
    ['http://[fc00::1]/', 'unique_local'],
    ['http://[fe80::1]/', 'link_local'],
    ['http://224.0.0.1/', 'multicast'],
    ['http://[ff02::1]/', 'multicast'],
    ['http://metadata.google.internal/computeMetadata/v1/', 'metadata'],
    ['http://[fd00:ec2::254]/', 'metadata'],
    ['http://api.localhost/', 'internal_hostname'],
    ['http://localhost./', 'internal_hostname'],
    ['http://redis:6379/', 'internal_hostname'],
    ['http://evil@127.0.0.1/', 'credentials_in_url'],
  ];

  test("a customer's key registering an internal target gets a 422 naming the rule, and nothing is stored", async () => {
    const s = await subscribe();
    const key = await adminKey(s.customer);
    const before = await count();
    for (const [url, refusal] of forbidden) {
      const res = await strict.call('POST', '/v1/webhook-endpoints', key, { url });
      assert.equal(res.status, 422, url);
      assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
      assert.equal(res.body.type, '/problems/unprocessable');
      assert.equal(res.body.reason, 'webhook_target_forbidden', url);
      assert.equal(res.body.refusal, refusal, url);
      assert.deepEqual(
        res.body.errors.map((e: { pointer: string }) => e.pointer),
        ['#/url'],
      );
      assert.ok(res.body.detail.startsWith('Webhook URL refused: '), res.body.detail);
    }
    // Other schemes fail validation first.
    assert.equal((await strict.call('POST', '/v1/webhook-endpoints', key, { url: 'gopher://127.0.0.1:6379/_INFO' })).status, 400);
    assert.deepEqual(await count(), before);
    const listed = await strict.call('GET', '/v1/webhook-endpoints', key);
    assert.deepEqual(listed.body.data, []);

    const publicTarget = await strict.call('POST', '/v1/webhook-endpoints', key, { url: 'https://hooks.example.com/meterflow' });
    assert.equal(publicTarget.status, 201);
    await strict.call('DELETE', `/v1/webhook-endpoints/${publicTarget.body.id}`, key);
  });

  test('a name that resolves to a forbidden address at delivery is refused without connecting (DNS rebinding)', async () => {
    const s = await subscribe();
    const r = await receiver();
    const key = await adminKey(s.customer);
    // The name passes registration; by delivery it points at this machine.
    const created = await strict.call('POST', '/v1/webhook-endpoints', key, { url: `http://hooks.rebind.test:${portOf(r)}/hooks` });
    assert.equal(created.status, 201);
    r.secret = created.body.secret;
    const dns = fakeDns({ 'hooks.rebind.test': ['127.0.0.1'] });

    const err = await failure(notifyThreshold({ targets: webhookTargetPolicy(), resolve: dns.resolve })(crossing(s)));
    assert.equal(err.nonRetryable, true);
    assert.deepEqual(dns.lookups, ['hooks.rebind.test'], 'resolved once');
    assert.equal(r.connections, 0);
    const [row] = await rowsOf(s.subscriptionId);
    assert.equal(row?.status, 'failed');
    assert.equal(row?.attempts, 1);
    assert.equal(
      row?.last_error,
      `endpoint ${created.body.id}: target refused (loopback): hooks.rebind.test resolves to 127.0.0.1, a loopback address`,
    );
  });

  test('every resolved address is checked: one forbidden address refuses the target, even after an allowed one', async () => {
    const s = await subscribe();
    const r = await receiver();
    await addEndpoint(s.customerId, `http://hooks.mixed.test:${portOf(r)}/hooks`, r.secret);
    const dns = fakeDns({ 'hooks.mixed.test': ['127.0.0.1', '::ffff:10.0.0.7'] });
    const err = await failure(notifyThreshold({ resolve: dns.resolve })(crossing(s)));
    assert.equal(err.nonRetryable, true);
    assert.equal(r.connections, 0);
    assert.match(
      (await rowsOf(s.subscriptionId))[0]?.last_error ?? '',
      /target refused \(private\): hooks\.mixed\.test resolves to ::ffff:10\.0\.0\.7, which embeds 10\.0\.0\.7/,
    );
  });

  test('https targets go through the same check', async () => {
    const s = await subscribe();
    const r = await receiver();
    await addEndpoint(s.customerId, `https://hooks.rebind.test:${portOf(r)}/hooks`, r.secret);
    const dns = fakeDns({ 'hooks.rebind.test': ['::1'] });
    const err = await failure(notifyThreshold({ resolve: dns.resolve })(crossing(s)));
    assert.equal(err.nonRetryable, true);
    assert.deepEqual(dns.lookups, ['hooks.rebind.test']);
    assert.equal(r.connections, 0);
    assert.match(
      (await rowsOf(s.subscriptionId))[0]?.last_error ?? '',
      /target refused \(loopback\): hooks\.rebind\.test resolves to ::1, a loopback address$/,
    );
  });

  test('endpoints stored before the policy existed are refused at delivery as written, without a lookup or a connection', async () => {
    const s = await subscribe();
    const r = await receiver();
    const dns = fakeDns({});
    const literal = await addEndpoint(s.customerId, r.url, r.secret);
    const named = await addEndpoint(s.customerId, `http://localhost:${portOf(r)}/hooks`, r.secret);
    const err = await failure(notifyThreshold({ targets: webhookTargetPolicy(), resolve: dns.resolve })(crossing(s)));
    assert.equal(err.nonRetryable, true);
    assert.equal(r.connections, 0);
    assert.deepEqual(dns.lookups, []);
    const [row] = await rowsOf(s.subscriptionId);
    assert.equal(row?.status, 'failed');
    assert.equal(
      row?.last_error,
      `endpoint ${literal}: target refused (loopback): the host is 127.0.0.1, a loopback address; endpoint ${named}: target refused (internal_hostname): localhost names this machine`,
    );
  });

  test('an allow-listed target is reached at the address that was checked', async () => {
    const s = await subscribe();
    const r = await receiver();
    await addEndpoint(s.customerId, `http://hooks.dev.test:${portOf(r)}/hooks`, r.secret);
    // hooks.dev.test exists only in this resolver: the request arriving proves the checked address was used.
    const dns = fakeDns({ 'hooks.dev.test': ['127.0.0.1'] });
    await notifyThreshold({ targets: LOCAL_RECEIVERS, resolve: dns.resolve })(crossing(s));
    assert.equal((await rowsOf(s.subscriptionId))[0]?.status, 'delivered');
    assert.equal(r.received.length, 1);
    assert.ok(r.received[0]?.verified.ok);
    assert.equal(r.received[0]?.headers.host, `hooks.dev.test:${portOf(r)}`);
    assert.deepEqual(dns.lookups, ['hooks.dev.test']);
  });

  test('an allow-listed host name is delivered to through the system resolver', async () => {
    const s = await subscribe();
    const r = await receiver();
    await addEndpoint(s.customerId, `http://localhost:${portOf(r)}/hooks`, r.secret);
    await notifyThreshold({ targets: webhookTargetPolicy(['localhost']) })(crossing(s));
    assert.equal((await rowsOf(s.subscriptionId))[0]?.status, 'delivered');
    assert.equal(r.received.length, 1);
  });

  test('a redirect is not followed, not even to an allowed target', async () => {
    const s = await subscribe();
    const r = await receiver();
    const elsewhere = await receiver();
    await addEndpoint(s.customerId, r.url, r.secret);
    r.script.push({ status: 307, location: elsewhere.url });
    const err = await failure(notifyThreshold()(crossing(s)));
    assert.equal(err.nonRetryable, false);
    assert.equal(r.received.length, 1);
    assert.equal(elsewhere.connections, 0);
    assert.match((await rowsOf(s.subscriptionId))[0]?.last_error ?? '', /HTTP 307 \(redirects are not followed\)$/);
  });
});
