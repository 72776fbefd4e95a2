import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createMeteringTestApp, type MeteringTestApp } from '../support/metering-app';

let t: MeteringTestApp;
const NOW = '2026-03-15T12:00:00.000Z';

before(async () => {
  t = await createMeteringTestApp(new Date(NOW));
  await t.seed();
});
after(async () => {
  await t?.close();
});

const post = (body: unknown, opts: { query?: string; contentType?: string; raw?: string } = {}) =>
  fetch(`${t.url}/v1/events${opts.query ?? ''}`, {
    method: 'POST',
    headers: { 'content-type': opts.contentType ?? 'application/json', authorization: `Bearer ${t.adminKey}` },
    body: opts.raw ?? JSON.stringify(body),
  });

const storedEvents = async () => (await t.db.pool.query<{ n: string }>('select count(*)::text as n from usage_events')).rows[0]!.n;

const ok = { id: 'ok-1', customer: 'acme', type: 'tokens', properties: { tokens: '5' } };
const tooBigProperties = { blob: 'x'.repeat(9000) };

describe('bad input: 4xx problem+json naming what is wrong, nothing stored', () => {
  const cases: Array<{ name: string; status: number; type: string; send: () => Promise<Response>; mentions?: string }> = [
    { name: 'malformed JSON', status: 400, type: 'malformed_json', send: () => post(null, { raw: '{"id": "a",' }) },
    { name: 'a JSON string body', status: 400, type: 'validation_failed', send: () => post('hello') },
    { name: 'a JSON number body', status: 400, type: 'validation_failed', send: () => post(42) },
    { name: 'an empty batch', status: 400, type: 'validation_failed', send: () => post([]) },
    {
      name: 'more than 1,000 events',
      status: 413,
      type: 'payload_too_large',
      send: () => post(Array.from({ length: 1001 }, (_, i) => ({ ...ok, id: `b${i}` }))),
      mentions: '1000',
    },
    {
      name: 'missing id',
      status: 400,
      type: 'validation_failed',
      send: () => post({ customer: 'acme', type: 'tokens', properties: { tokens: '1' } }),
      mentions: '/id',
    },
    {
      name: 'id longer than 128',
      status: 400,
      type: 'validation_failed',
      send: () => post({ ...ok, id: 'x'.repeat(129) }),
      mentions: '/id',
    },
    { name: 'id is a number', status: 400, type: 'validation_failed', send: () => post({ ...ok, id: 7 }), mentions: '/id' },
    { name: 'missing type', status: 400, type: 'validation_failed', send: () => post({ id: 'a', customer: 'acme' }), mentions: '/type' },
    {
      name: 'timestamp not RFC 3339',
      status: 400,
      type: 'validation_failed',
      send: () => post({ ...ok, timestamp: 'yesterday' }),
      mentions: '/timestamp',
    },
    {
      name: 'timestamp without offset',
      status: 400,
      type: 'validation_failed',
      send: () => post({ ...ok, timestamp: '2026-03-15T10:00:00' }),
      mentions: '/timestamp',
    },
    {
      name: 'properties is an array',
      status: 400,
      type: 'validation_failed',
      send: () => post({ ...ok, properties: [1, 2] }),
      mentions: '/properties',
    },
    {
      name: 'properties over 8 KB',
      status: 400,
      type: 'validation_failed',
      send: () => post({ ...ok, properties: tooBigProperties }),
      mentions: '/properties',
    },
    {
      name: 'unknown field (typo)',
      status: 400,
      type: 'validation_failed',
      send: () => post({ ...ok, timestmp: NOW }),
      mentions: 'timestmp',
    },
    { name: 'NUL character in the id', status: 400, type: 'validation_failed', send: () => post({ ...ok, id: 'a\u0000b' }) },
    {
      name: 'no customer and an unrestricted key',
      status: 400,
      type: 'validation_failed',
      send: () => post({ id: 'a', type: 'tokens', properties: { tokens: '1' } }),
      mentions: 'customer',
    },
    { name: 'unknown customer', status: 422, type: 'unprocessable', send: () => post({ ...ok, customer: 'nobody' }), mentions: 'nobody' },
    { name: 'unknown event type', status: 422, type: 'unprocessable', send: () => post({ ...ok, type: 'teleport' }), mentions: 'teleport' },
    {
      name: 'value "NaN"',
      status: 422,
      type: 'unprocessable',
      send: () => post({ ...ok, properties: { tokens: 'NaN' } }),
      mentions: 'tokens',
    },
    {
      name: 'value "Infinity"',
      status: 422,
      type: 'unprocessable',
      send: () => post({ ...ok, properties: { tokens: 'Infinity' } }),
      mentions: 'tokens',
    },
    {
      name: 'negative value',
      status: 422,
      type: 'unprocessable',
      send: () => post({ ...ok, properties: { tokens: -3 } }),
      mentions: 'negative',
    },
    {
      name: 'value in exponent notation',
      status: 422,
      type: 'unprocessable',
      send: () => post({ ...ok, properties: { tokens: '1e5' } }),
      mentions: 'tokens',
    },
    { name: 'value missing', status: 422, type: 'unprocessable', send: () => post({ ...ok, properties: {} }), mentions: 'tokens' },
    {
      name: 'value is a boolean',
      status: 422,
      type: 'unprocessable',
      send: () => post({ ...ok, properties: { tokens: true } }),
      mentions: 'tokens',
    },
    {
      name: 'timestamp too far in the future',
      status: 422,
      type: 'unprocessable',
      send: () => post({ ...ok, timestamp: '2026-03-15T12:06:00Z' }),
      mentions: 'ahead',
    },
    {
      name: 'event outside the meter filter',
      status: 422,
      type: 'unprocessable',
      send: () => post({ id: 'f', customer: 'acme', type: 'compute', properties: { resource: 'cpu', seconds: 1 } }),
      mentions: 'filter',
    },
    { name: 'text/plain body', status: 415, type: 'unsupported_media_type', send: () => post(ok, { contentType: 'text/plain' }) },
    {
      name: 'atomic value not a boolean',
      status: 400,
      type: 'validation_failed',
      send: () => post(ok, { query: '?atomic=maybe' }),
      mentions: 'atomic',
    },
    {
      name: 'atomic batch with one bad event',
      status: 422,
      type: 'unprocessable',
      send: () => post([ok, { ...ok, id: 'ok-2', customer: 'nobody' }], { query: '?atomic=true' }),
      mentions: 'index 1',
    },
    {
      name: 'a batch where every event is bad',
      status: 422,
      type: 'unprocessable',
      send: () =>
        post([
          { ...ok, type: 'x' },
          { ...ok, id: 'y', type: 'x' },
        ]),
    },
    {
      name: 'CloudEvent without specversion',
      status: 400,
      type: 'validation_failed',
      send: () =>
        post(
          { id: 'c', source: 's', type: 'tokens', subject: 'acme', data: { tokens: '1' } },
          { contentType: 'application/cloudevents+json' },
        ),
      mentions: 'specversion',
    },
    {
      name: 'CloudEvents batch that is not an array',
      status: 400,
      type: 'validation_failed',
      send: () => post({ specversion: '1.0' }, { contentType: 'application/cloudevents-batch+json' }),
    },
    {
      name: 'body over 5 MB',
      status: 413,
      type: 'payload_too_large',
      send: () => post(null, { raw: JSON.stringify([{ ...ok, properties: { blob: 'x'.repeat(6 * 1024 * 1024) } }]) }),
    },
  ];

  for (const c of cases) {
    test(`${c.name} → ${c.status}`, async () => {
      const res = await c.send();
      const text = await res.text();
      assert.equal(res.status, c.status, text);
      assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
      const body = JSON.parse(text) as { type: string; detail: string; errors?: unknown[] };
      assert.equal(body.type, `/problems/${c.type}`);
      if (c.mentions) assert.ok(JSON.stringify(body).includes(c.mentions), `problem should mention ${c.mentions}: ${text}`);
      assert.equal(await storedEvents(), '0');
    });
  }
  test('the table has at least 20 cases', () => assert.ok(cases.length >= 20));
});

describe('ingestion over HTTP', () => {
  test('a single event is 201, its retry 200 duplicate, another payload under its id 409', async () => {
    const e = { id: 'http-1', customer: 'acme', type: 'tokens', timestamp: '2026-03-15T11:00:00Z', properties: { tokens: '2.5' } };
    const first = await post(e);
    assert.equal(first.status, 201);
    assert.deepEqual(await first.json(), { index: 0, id: 'http-1', status: 'accepted' });
    const retry = await post(e);
    assert.equal(retry.status, 200);
    assert.equal(((await retry.json()) as { status: string }).status, 'duplicate');
    const clash = await post({ ...e, properties: { tokens: '3' } });
    assert.equal(clash.status, 409);
    const problem = (await clash.json()) as { type: string; reason: string };
    assert.equal(problem.type, '/problems/conflict');
    assert.equal(problem.reason, 'id_reused');
  });

  test('a mixed batch stores the valid events and reports each', async () => {
    const res = await post([
      { id: 'mix-1', customer: 'acme', type: 'api_call' },
      { id: 'mix-2', customer: 'acme', type: 'unknown' },
      { id: 'mix-1', customer: 'acme', type: 'api_call' },
    ]);
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      accepted: number;
      rejected: number;
      duplicate: number;
      results: Array<{ status: string; reason?: string }>;
    };
    assert.deepEqual([body.accepted, body.duplicate, body.rejected], [1, 1, 1]);
    assert.deepEqual(
      body.results.map((r) => r.reason ?? r.status),
      ['accepted', 'unknown_event_type', 'duplicate'],
    );
  });

  test('a CloudEvents batch ingests with the same semantics', async () => {
    const ce = (id: string, tokens: string) => ({
      specversion: '1.0',
      id,
      source: '/llm-gateway',
      type: 'tokens',
      subject: 'globex',
      time: '2026-03-15T10:30:00Z',
      datacontenttype: 'application/json',
      data: { tokens },
    });
    const res = await post([ce('ce-1', '10'), ce('ce-2', '20'), ce('ce-1', '10')], { contentType: 'application/cloudevents-batch+json' });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { accepted: number; duplicate: number };
    assert.deepEqual([body.accepted, body.duplicate], [2, 1]);
    const usage = await fetch(
      `${t.url}/v1/usage?customer=globex&meter=tokens&from=2026-03-15T00:00:00Z&to=2026-03-16T00:00:00Z&granularity=hour`,
      { headers: { authorization: `Bearer ${t.adminKey}` } },
    );
    assert.equal(usage.status, 200);
    const u = (await usage.json()) as { value: string; buckets: Array<{ start: string; value: string }> };
    assert.equal(u.value, '30');
    assert.equal(u.buckets.length, 24);
    assert.equal(u.buckets.find((b) => b.start === '2026-03-15T10:00:00.000Z')?.value, '30');
    const single = await post(ce('ce-3', '1'), { contentType: 'application/cloudevents+json' });
    assert.equal(single.status, 201);
  });

  test('usage query validation: to before from is a 400 naming the field', async () => {
    const res = await fetch(`${t.url}/v1/usage?customer=acme&meter=tokens&from=2026-03-16T00:00:00Z&to=2026-03-15T00:00:00Z`, {
      headers: { authorization: `Bearer ${t.adminKey}` },
    });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { detail: string }).detail, /to: must be after from/);
  });

  test('minute buckets add up to the range, and cover at most 48 hours', async () => {
    const get = (range: string) =>
      fetch(`${t.url}/v1/usage?customer=globex&meter=tokens&${range}&granularity=minute`, {
        headers: { authorization: `Bearer ${t.adminKey}` },
      });
    const res = await get('from=2026-03-15T10:00:00Z&to=2026-03-15T12:00:00Z');
    assert.equal(res.status, 200);
    const u = (await res.json()) as { value: string; buckets: Array<{ start: string; end: string; value: string }> };
    assert.equal(u.buckets.length, 120);
    assert.deepEqual([u.buckets[1]!.start, u.buckets[1]!.end], ['2026-03-15T10:01:00.000Z', '2026-03-15T10:02:00.000Z']);
    assert.equal(
      u.buckets.reduce((sum, b) => sum + Number(b.value), 0),
      Number(u.value),
    );
    assert.equal((await get('from=2026-03-15T00:00:00Z&to=2026-03-17T00:00:00Z')).status, 200);
    const tooLong = await get('from=2026-03-15T00:00:00Z&to=2026-03-17T00:00:01Z');
    assert.equal(tooLong.status, 400);
    assert.match(((await tooLong.json()) as { detail: string }).detail, /granularity: minute buckets cover a range of at most 48 hours/);
  });
});
