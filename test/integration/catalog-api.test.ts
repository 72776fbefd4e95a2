import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createMeteringTestApp, type MeteringTestApp } from '../support/metering-app';

let t: MeteringTestApp;
before(async () => {
  t = await createMeteringTestApp(new Date('2026-03-15T12:00:00Z'));
});
after(async () => {
  await t?.close();
});

const call = (method: string, path: string, body?: unknown) =>
  fetch(`${t.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${t.adminKey}` },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

describe('customers', () => {
  test('create is 201, an identical retry 200, different attributes 409; get and list', async () => {
    const input = { external_id: 'cus_42', name: 'Initech', currency: 'EUR' };
    const created = await call('POST', '/v1/customers', input);
    assert.equal(created.status, 201);
    assert.equal(created.headers.get('location'), '/v1/customers/cus_42');
    const body = (await created.json()) as Record<string, string>;
    assert.deepEqual({ ...body, created_at: undefined }, { ...input, created_at: undefined });
    assert.equal((await call('POST', '/v1/customers', input)).status, 200);
    const clash = await call('POST', '/v1/customers', { ...input, currency: 'USD' });
    assert.equal(clash.status, 409);
    assert.equal(((await clash.json()) as { type: string }).type, '/problems/conflict');

    const got = await call('GET', '/v1/customers/cus_42');
    assert.equal(got.status, 200);
    assert.equal(((await got.json()) as { name: string }).name, 'Initech');
    assert.equal((await call('GET', '/v1/customers/nope')).status, 404);

    for (const id of ['a', 'b', 'c']) await call('POST', '/v1/customers', { external_id: id, name: id, currency: 'USD' });
    const page1 = (await (await call('GET', '/v1/customers?limit=2')).json()) as {
      data: Array<{ external_id: string }>;
      next_cursor: string;
    };
    assert.deepEqual(
      page1.data.map((c) => c.external_id),
      ['a', 'b'],
    );
    const page2 = (await (await call('GET', `/v1/customers?limit=2&after=${page1.next_cursor}`)).json()) as {
      data: Array<{ external_id: string }>;
      next_cursor: string | null;
    };
    assert.deepEqual(
      page2.data.map((c) => c.external_id),
      ['c', 'cus_42'],
    );
    assert.equal(page2.next_cursor, null);
  });

  test('invalid customers are refused naming the field, nothing stored', async () => {
    const before = (await t.db.pool.query('select count(*)::int as n from customers')).rows[0].n as number;
    for (const [body, field] of [
      [{ external_id: '', name: 'x', currency: 'USD' }, 'external_id'],
      [{ external_id: 'x', name: 'x', currency: 'usd' }, 'currency'],
      [{ external_id: 'x', currency: 'USD' }, 'name'],
      [{ external_id: 'x', name: 'x', currency: 'USD', extra: 1 }, 'extra'],
    ] as const) {
      const res = await call('POST', '/v1/customers', body);
      assert.equal(res.status, 400);
      assert.ok(JSON.stringify(await res.json()).includes(field), field);
    }
    assert.equal((await t.db.pool.query('select count(*)::int as n from customers')).rows[0].n, before);
    assert.equal((await call('GET', '/v1/customers?limit=0')).status, 400);
  });
});

describe('meters', () => {
  test('create, idempotent retry, one meter per event type, get and list', async () => {
    const meter = { code: 'storage_gb', name: 'Storage', event_type: 'storage', aggregation: 'latest', value_property: 'gb' };
    const created = await call('POST', '/v1/meters', meter);
    assert.equal(created.status, 201);
    assert.deepEqual({ ...((await created.json()) as object), created_at: undefined }, { ...meter, filter: {}, created_at: undefined });
    assert.equal((await call('POST', '/v1/meters', meter)).status, 200);
    const sameType = await call('POST', '/v1/meters', { ...meter, code: 'storage2' });
    assert.equal(sameType.status, 409);
    assert.match(((await sameType.json()) as { detail: string }).detail, /already feed meter "storage_gb"/);
    assert.equal((await call('GET', '/v1/meters/storage_gb')).status, 200);
    assert.equal((await call('GET', '/v1/meters/nope')).status, 404);
    const list = (await (await call('GET', '/v1/meters')).json()) as { data: Array<{ code: string }> };
    assert.ok(list.data.some((m) => m.code === 'storage_gb'));
  });

  test('a meter created just now is usable for ingestion at once', async () => {
    await call('POST', '/v1/customers', { external_id: 'fresh', name: 'Fresh', currency: 'USD' });
    assert.equal(
      (await call('POST', '/v1/meters', { code: 'sms', name: 'SMS', event_type: 'sms_sent', aggregation: 'count' })).status,
      201,
    );
    const res = await call('POST', '/v1/events', { id: 's1', customer: 'fresh', type: 'sms_sent' });
    assert.equal(res.status, 201);
  });

  test('invalid meters are refused with a message naming the field', async () => {
    const cases: Array<[unknown, string]> = [
      [{ code: 'Bad Code', name: 'x', event_type: 'e1', aggregation: 'count' }, 'code'],
      [{ code: 'c1', name: 'x', event_type: 'e1', aggregation: 'median' }, 'aggregation'],
      [{ code: 'c2', name: 'x', event_type: 'e2', aggregation: 'sum' }, 'value_property'],
      [{ code: 'c3', name: 'x', event_type: 'e3', aggregation: 'count', value_property: 'v' }, 'value_property'],
      [{ code: 'c4', name: 'x', event_type: 'e4', aggregation: 'count', filter: { a: { nested: true } } }, 'filter'],
    ];
    for (const [body, field] of cases) {
      const res = await call('POST', '/v1/meters', body);
      assert.equal(res.status, 400, field);
      assert.ok(JSON.stringify(await res.json()).includes(field), field);
    }
  });
});
