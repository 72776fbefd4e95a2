import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import express from 'express';
import { pino } from 'pino';
import { pinoHttp } from 'pino-http';
import { createApp } from '../../src/api/app';
import { problemHandler } from '../../src/api/error-handler';
import { ProblemError } from '../../src/api/problem';
import { createApiMetrics } from '../../src/api/metrics';
import { redactPaths } from '../../src/logger';
import { createPool } from '../../src/db/pool';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { listen, type Listening } from '../support/http';
import { localEnvironment } from '../support/temporal';
import { waitFor } from '../support/wait-for';

/** Captures log lines so tests can assert on what was (not) logged. */
function capturingLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: pino({ level: 'info', redact: { paths: redactPaths, censor: '[redacted]' } }, stream), lines };
}

let db: TestDatabase;
let temporal: TestWorkflowEnvironment;
let server: Listening;
const logs = capturingLogger();

before(async () => {
  [db, temporal] = await Promise.all([createTestDatabase(), localEnvironment()]);
  const app = createApp({
    logger: logs.logger,
    readiness: {
      postgres: () => db.pool.query('select 1'),
      temporal: () => temporal.connection.healthService.check({}),
    },
    authenticate: (_req, _res, next) => next(),
    routers: [],
    metrics: createApiMetrics(),
  });
  server = await listen(app);
});

after(async () => {
  await server?.close();
  await Promise.all([db?.drop(), temporal?.teardown()]);
});

describe('operations endpoints', () => {
  test('/healthz answers 200', async () => {
    const res = await fetch(`${server.url}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
  });

  test('/readyz is 200 when the real Postgres and the real Temporal server answer', async () => {
    const res = await fetch(`${server.url}/readyz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ready', checks: { postgres: 'ok', temporal: 'ok' } });
  });

  test('/readyz is a 503 problem naming the dependency that does not answer', async () => {
    const deadPool = createPool('postgres://nobody:x@127.0.0.1:1/none');
    const app = createApp({
      logger: logs.logger,
      readiness: { postgres: () => deadPool.query('select 1'), temporal: () => temporal.connection.healthService.check({}) },
      authenticate: (_req, _res, next) => next(),
      routers: [],
      metrics: createApiMetrics(),
    });
    const dead = await listen(app);
    try {
      const res = await fetch(`${dead.url}/readyz`);
      assert.equal(res.status, 503);
      assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
      const body = (await res.json()) as Record<string, unknown>;
      assert.equal(body.type, '/problems/unavailable');
      assert.deepEqual(body.checks, { postgres: 'failed', temporal: 'ok' });
    } finally {
      await dead.close();
      await deadPool.end();
    }
  });

  test('/metrics exposes request durations by route template', async () => {
    await fetch(`${server.url}/healthz`);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(text, /http_request_duration_seconds_count\{method="GET",route="\/healthz",status="200"\} \d+/);
    assert.match(text, /process_cpu_user_seconds_total/);
  });

  test('/openapi.json is an OpenAPI 3.1 document generated from the route schemas; /docs serves the browser', async () => {
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    };
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths['/readyz']);
    assert.ok(doc.components.schemas.Problem);
    const docs = await fetch(`${server.url}/docs/`);
    assert.equal(docs.status, 200);
    assert.match(await docs.text(), /swagger-ui/i);
  });
});

describe('errors are RFC 9457 problem+json', () => {
  test('an unknown route is a 404 problem with a stable type and the request id as instance', async () => {
    const res = await fetch(`${server.url}/v1/nothing-here`, { headers: { 'x-request-id': 'req-123' } });
    assert.equal(res.status, 404);
    assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(res.headers.get('x-request-id'), 'req-123');
    assert.deepEqual(await res.json(), {
      type: '/problems/not_found',
      title: 'No such resource',
      status: 404,
      detail: 'No route for GET /v1/nothing-here.',
      instance: 'urn:request:req-123',
    });
  });

  test('malformed JSON is a 400 problem, not a 500', async () => {
    const res = await fetch(`${server.url}/v1/anything`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"unterminated": ',
    });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { type: string }).type, '/problems/malformed_json');
  });

  test('every problem type is documented at its type URI', async () => {
    const res = await fetch(`${server.url}/problems/not_found`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { type: '/problems/not_found', status: 404, title: 'No such resource' });
  });

  test('API keys never reach the logs', async () => {
    await fetch(`${server.url}/healthz/x`, { headers: { authorization: 'Bearer mf_live_supersecret', 'x-api-key': 'mf_live_other' } });
    // The request is logged once its response is finished, which may come after the client has read it.
    const joined = await waitFor(() => logs.lines.join(''), {
      description: 'the request logged',
      until: (text) => text.includes('[redacted]'),
    });
    assert.ok(!joined.includes('supersecret'));
    assert.ok(!joined.includes('mf_live_other'));
  });

  test('an unexpected error is a 500 naming only the request id; the stack goes to the log', async () => {
    const local = capturingLogger();
    const app = express();
    app.use(pinoHttp({ logger: local.logger, genReqId: () => 'req-500' }));
    app.get('/boom', () => {
      throw new Error('database password is hunter2');
    });
    app.use(problemHandler);
    const s = await listen(app, { openApi: false }); // a bare app around the problem handler, not the API
    try {
      const res = await fetch(`${s.url}/boom`);
      assert.equal(res.status, 500);
      const text = await res.text();
      assert.ok(!text.includes('hunter2') && !text.includes('at '), text);
      assert.equal((JSON.parse(text) as { instance: string }).instance, 'urn:request:req-500');
      const logged = local.lines.map((l) => JSON.parse(l) as { msg: string; req?: { id: string }; err?: { stack: string } });
      const entry = logged.find((l) => l.msg === 'unhandled error');
      assert.equal(entry?.req?.id, 'req-500');
      assert.match(entry?.err?.stack ?? '', /hunter2/);
    } finally {
      await s.close();
    }
  });

  test('a 503 (a dependency away, the ingest queue full) is logged as a warning; a 500 as an error', async () => {
    const local = capturingLogger();
    const routes = express.Router();
    routes.get('/v1/away', () => {
      throw new ProblemError('unavailable', 'PostgreSQL is unreachable; retry shortly.');
    });
    routes.get('/v1/boom', () => {
      throw new Error('a bug');
    });
    const app = createApp({
      logger: local.logger,
      readiness: {},
      authenticate: (_req, _res, next) => next(),
      routers: [routes],
      metrics: createApiMetrics(),
    });
    const s = await listen(app, { openApi: false }); // two routes of the test's own, not of the API
    try {
      assert.equal((await fetch(`${s.url}/v1/away`)).status, 503);
      assert.equal((await fetch(`${s.url}/v1/boom`)).status, 500);
      const logged = local.lines.map((l) => JSON.parse(l) as { level: number; req?: { url: string } });
      const levels = (url: string) => logged.filter((l) => l.req?.url === url).map((l) => pino.levels.labels[l.level]);
      assert.deepEqual(levels('/v1/away'), ['warn', 'warn']);
      assert.deepEqual(levels('/v1/boom'), ['error', 'error']);
    } finally {
      await s.close();
    }
  });
});
