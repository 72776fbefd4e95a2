import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createHttpPaymentProvider } from '../../src/provider/http-payment-provider';
import {
  ProviderRejectedError,
  ProviderUnavailableError,
  type ChargeRequest,
  type PaymentProvider,
} from '../../src/provider/payment-provider';
import { startProviderSimulator, type ProviderSimulator, type ProviderSimulatorOptions } from '../../src/provider/simulator';
import { freePort } from '../../scripts/free-port';

// Long enough that a loaded machine never times out a simulator that answers at once.
const TIMEOUT_MS = 2000;

let sim: ProviderSimulator;
let provider: PaymentProvider;
const extra: ProviderSimulator[] = [];
const dirs: string[] = [];

async function start(opts: Omit<ProviderSimulatorOptions, 'port'> = {}): Promise<{ sim: ProviderSimulator; provider: PaymentProvider }> {
  const s = await startProviderSimulator({ port: await freePort(), ...opts });
  return { sim: s, provider: createHttpPaymentProvider({ baseUrl: s.url, timeoutMs: TIMEOUT_MS }) };
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'provider-sim-'));
  dirs.push(dir);
  return dir;
}

before(async () => {
  // With a state file every charge awaits a write, the window in which unserialized duplicates would both charge.
  ({ sim, provider } = await start({ stateFile: path.join(await tempDir(), 'charges.ndjson') }));
});
after(async () => {
  await sim.close();
  for (const s of extra) await s.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

let invoices = 0;
/** A charge for an invoice of its own, so tests never see each other's charges or faults. */
function newCharge(overrides: Partial<ChargeRequest> = {}): ChargeRequest {
  const n = ++invoices;
  return {
    idempotencyKey: `key-${n}`,
    customerId: `cust-${n}`,
    invoiceId: `inv-${n}`,
    amountMinor: '1999',
    currency: 'USD',
    description: `Invoice ${n}`,
    ...overrides,
  };
}

async function injectFault(url: string, fault: object): Promise<void> {
  const res = await fetch(`${url}/_sim/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(fault),
  });
  assert.equal(res.status, 201, await res.text());
}

function rawCharge(url: string, key: string | undefined, body: unknown): Promise<Response> {
  return fetch(`${url}/v1/charges`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': key }) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function allCharges(url: string): Promise<unknown[]> {
  const res = await fetch(`${url}/v1/charges`);
  assert.equal(res.status, 200);
  return ((await res.json()) as { data: unknown[] }).data;
}

describe('charges', () => {
  test('a charge succeeds and is in the provider record', async () => {
    const req = newCharge({ amountMinor: '123456789012345678901234567890' });
    const charge = await provider.charge(req);
    assert.match(charge.id, /^ch_[0-9a-f]{32}$/);
    assert.deepEqual(
      { ...charge, id: undefined, createdAt: undefined },
      {
        id: undefined,
        createdAt: undefined,
        idempotencyKey: req.idempotencyKey,
        customerId: req.customerId,
        invoiceId: req.invoiceId,
        amountMinor: '123456789012345678901234567890',
        currency: 'USD',
        status: 'succeeded',
      },
    );
    assert.deepEqual(await provider.listCharges({ invoiceId: req.invoiceId }), [charge]);
    assert.deepEqual(await provider.listCharges({ customerId: req.customerId }), [charge]);
    assert.deepEqual(await provider.listCharges({ customerId: req.customerId, invoiceId: 'other' }), []);
    const byId = await fetch(`${sim.url}/v1/charges/${charge.id}`);
    assert.deepEqual(await byId.json(), charge);
    assert.equal((await fetch(`${sim.url}/v1/charges/ch_missing`)).status, 404);
    assert.deepEqual(await (await fetch(`${sim.url}/healthz`)).json(), { status: 'ok' });
  });

  test('the same key with the same parameters replays the first charge', async () => {
    const req = newCharge();
    const first = await provider.charge(req);
    const second = await provider.charge(req);
    assert.deepEqual(second, first);
    const raw = await rawCharge(sim.url, req.idempotencyKey, { ...req, idempotencyKey: undefined });
    assert.equal(raw.status, 200);
    assert.equal(raw.headers.get('idempotent-replayed'), 'true');
    assert.equal(((await raw.json()) as { id: string }).id, first.id);
    assert.equal((await provider.listCharges({ invoiceId: req.invoiceId })).length, 1);
  });

  test('the same key with other parameters is rejected, and the first charge stands', async () => {
    const req = newCharge();
    const first = await provider.charge(req);
    for (const other of [{ amountMinor: '2000' }, { currency: 'EUR' }, { description: undefined }, { customerId: 'someone-else' }]) {
      await assert.rejects(provider.charge({ ...req, ...other }), (err: unknown) => {
        assert.ok(err instanceof ProviderRejectedError);
        assert.equal(err.status, 409);
        assert.equal(err.code, 'idempotency_key_reuse');
        assert.match(err.detail ?? '', new RegExp(req.idempotencyKey));
        return true;
      });
    }
    assert.deepEqual(await provider.listCharges({ invoiceId: req.invoiceId }), [first]);
  });

  test('a new key for the same invoice is a second charge: deduplication is by key only', async () => {
    const req = newCharge();
    const first = await provider.charge(req);
    const second = await provider.charge({ ...req, idempotencyKey: `${req.idempotencyKey}-b` });
    assert.notEqual(second.id, first.id);
    assert.deepEqual(
      (await provider.listCharges({ invoiceId: req.invoiceId })).map((c) => c.id),
      [first.id, second.id],
    );
  });

  test('20 concurrent requests under one key charge once', async () => {
    const req = newCharge();
    const { idempotencyKey, ...body } = req;
    const responses = await Promise.all(Array.from({ length: 20 }, () => rawCharge(sim.url, idempotencyKey, body)));
    assert.deepEqual(
      responses.map((r) => r.status),
      Array(20).fill(200),
    );
    assert.equal(responses.filter((r) => r.headers.get('idempotent-replayed') === 'true').length, 19);
    const ids = new Set(await Promise.all(responses.map(async (r) => ((await r.json()) as { id: string }).id)));
    assert.equal(ids.size, 1);
    const listed = await provider.listCharges({ invoiceId: req.invoiceId });
    assert.deepEqual(
      listed.map((c) => c.id),
      [...ids],
    );
  });

  test('concurrent requests through the client under one key get one charge', async () => {
    const req = newCharge();
    const charges = await Promise.all(Array.from({ length: 20 }, () => provider.charge(req)));
    assert.equal(new Set(charges.map((c) => c.id)).size, 1);
    assert.equal((await provider.listCharges({ invoiceId: req.invoiceId })).length, 1);
  });
});

describe('bad input', () => {
  test('is a 400 and records nothing', async () => {
    const before = (await allCharges(sim.url)).length;
    const good = { customerId: 'cust-bad', invoiceId: 'inv-bad', amountMinor: '100', currency: 'USD' };
    const cases: Array<[string, string | undefined, unknown, string]> = [
      ['no key', undefined, good, 'missing_idempotency_key'],
      ['empty key', '', good, 'missing_idempotency_key'],
      ['key too long', 'k'.repeat(256), good, 'missing_idempotency_key'],
      ['decimal amount', 'bad-1', { ...good, amountMinor: '1.00' }, 'validation_failed'],
      ['zero amount', 'bad-2', { ...good, amountMinor: '0' }, 'validation_failed'],
      ['negative amount', 'bad-3', { ...good, amountMinor: '-100' }, 'validation_failed'],
      ['leading zero', 'bad-4', { ...good, amountMinor: '0100' }, 'validation_failed'],
      ['number amount', 'bad-5', { ...good, amountMinor: 100 }, 'validation_failed'],
      ['lower-case currency', 'bad-6', { ...good, currency: 'usd' }, 'validation_failed'],
      ['unknown currency', 'bad-7', { ...good, currency: 'XYZ' }, 'validation_failed'],
      ['no customer', 'bad-8', { ...good, customerId: undefined }, 'validation_failed'],
      ['empty invoice', 'bad-9', { ...good, invoiceId: '' }, 'validation_failed'],
      ['unknown field', 'bad-10', { ...good, amount: '100' }, 'validation_failed'],
      ['not JSON', 'bad-11', '{"customerId":', 'malformed_json'],
    ];
    for (const [name, key, body, code] of cases) {
      const res = await rawCharge(sim.url, key, body);
      assert.equal(res.status, 400, name);
      assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8', name);
      assert.equal(((await res.json()) as { type: string }).type, `/problems/${code}`, name);
    }
    assert.equal((await allCharges(sim.url)).length, before);

    await assert.rejects(provider.charge(newCharge({ amountMinor: '19.99' })), (err: unknown) => {
      assert.ok(err instanceof ProviderRejectedError);
      assert.equal(err.status, 400);
      assert.equal(err.code, 'validation_failed');
      assert.match(err.detail ?? '', /amountMinor/);
      return true;
    });
    // The key of a refused request stays unused: the corrected request charges.
    assert.equal((await rawCharge(sim.url, 'bad-1', good)).status, 200);
    assert.equal((await allCharges(sim.url)).length, before + 1);
  });

  test('a fault request that is not valid is refused', async () => {
    for (const body of [{ fault: 'explode' }, { fault: '5xx', times: 0 }, { fault: '5xx', match: { customer: 'x' } }]) {
      const res = await fetch(`${sim.url}/_sim/faults`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 400, JSON.stringify(body));
    }
  });
});

describe('faults', () => {
  test('5xx: unavailable, nothing charged; a retry under the same key charges once', async () => {
    const req = newCharge();
    await injectFault(sim.url, { match: { invoiceId: req.invoiceId }, fault: '5xx', times: 2 });
    for (let i = 0; i < 2; i++) {
      await assert.rejects(provider.charge(req), (err: unknown) => err instanceof ProviderUnavailableError && /HTTP 503/.test(err.message));
      assert.deepEqual(await provider.listCharges({ invoiceId: req.invoiceId }), []);
    }
    const charge = await provider.charge(req);
    assert.equal(charge.status, 'succeeded');
    assert.deepEqual(await provider.listCharges({ invoiceId: req.invoiceId }), [charge]);
  });

  test('ambiguous: charged but unanswered; the retry returns the same charge', async () => {
    const req = newCharge();
    await injectFault(sim.url, { match: { invoiceId: req.invoiceId }, fault: 'ambiguous' });
    await assert.rejects(provider.charge(req), ProviderUnavailableError);
    const recorded = await provider.listCharges({ invoiceId: req.invoiceId });
    assert.equal(recorded.length, 1);
    assert.equal(recorded[0]!.status, 'succeeded');
    const retried = await provider.charge(req);
    assert.equal(retried.id, recorded[0]!.id);
    assert.deepEqual(retried, recorded[0]);
    assert.deepEqual(
      (await provider.listCharges({ invoiceId: req.invoiceId })).map((c) => c.id),
      [retried.id],
    );
  });

  test('timeout: unavailable within the client timeout, nothing charged; the key stays usable', async () => {
    const req = newCharge();
    await injectFault(sim.url, { match: { invoiceId: req.invoiceId }, fault: 'timeout' });
    const started = performance.now();
    await assert.rejects(provider.charge(req), ProviderUnavailableError);
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= TIMEOUT_MS - 50 && elapsed < TIMEOUT_MS * 2, `gave up after ${elapsed} ms`);
    assert.deepEqual(await provider.listCharges({ invoiceId: req.invoiceId }), []);
    const charge = await provider.charge(req);
    assert.deepEqual(await provider.listCharges({ invoiceId: req.invoiceId }), [charge]);
  });

  test('decline: a 402 replayed under the same key; a new key charges again', async () => {
    const req = newCharge();
    await injectFault(sim.url, { match: { invoiceId: req.invoiceId }, fault: 'decline', declineCode: 'insufficient_funds' });
    const declined = await provider.charge(req);
    assert.equal(declined.status, 'declined');
    assert.equal(declined.declineCode, 'insufficient_funds');
    const raw = await rawCharge(sim.url, req.idempotencyKey, { ...req, idempotencyKey: undefined });
    assert.equal(raw.status, 402);
    assert.equal(raw.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(await raw.json(), declined);
    assert.deepEqual(await provider.charge(req), declined);

    const retry = await provider.charge({ ...req, idempotencyKey: `${req.idempotencyKey}-retry` });
    assert.equal(retry.status, 'succeeded');
    assert.equal(retry.declineCode, undefined);
    assert.deepEqual(await provider.listCharges({ invoiceId: req.invoiceId }), [declined, retry]);
  });

  test('faults hit matching requests only, in order, and can be cleared', async () => {
    const a = newCharge();
    const b = newCharge();
    await injectFault(sim.url, { match: { customerId: a.customerId }, fault: 'decline' });
    await injectFault(sim.url, { match: { customerId: a.customerId }, fault: '5xx' });
    assert.equal((await provider.charge(b)).status, 'succeeded');
    assert.equal((await provider.charge(a)).status, 'declined');
    await assert.rejects(provider.charge({ ...a, idempotencyKey: 'a-2' }), ProviderUnavailableError);
    assert.equal((await provider.charge({ ...a, idempotencyKey: 'a-2' })).status, 'succeeded');

    await injectFault(sim.url, { match: { customerId: a.customerId }, fault: '5xx', times: 5 });
    assert.equal((await fetch(`${sim.url}/_sim/faults`, { method: 'DELETE' })).status, 204);
    assert.equal((await provider.charge({ ...a, idempotencyKey: 'a-3' })).status, 'succeeded');
    assert.deepEqual(
      (await provider.listCharges({ customerId: a.customerId })).map((c) => c.status),
      ['declined', 'succeeded', 'succeeded'],
    );
  });

  test('random faults follow the injected random numbers', async () => {
    const draws = [0.05, 0.15, 0.25, 0.35, 0.95];
    const { sim: random, provider: client } = await start({
      faultRates: { decline: 0.1, '5xx': 0.1, ambiguous: 0.1, timeout: 0.1 },
      random: () => draws.shift()!,
    });
    extra.push(random);
    const outcome = async (req: ChargeRequest) =>
      client.charge(req).then(
        (c) => c.status,
        (err: unknown) => (err instanceof ProviderUnavailableError ? 'unavailable' : 'other'),
      );
    const reqs = Array.from({ length: 5 }, () => newCharge());
    const results = [];
    for (const req of reqs) results.push(await outcome(req));
    // Rates are taken in the order decline, timeout, 5xx, ambiguous.
    assert.deepEqual(results, ['declined', 'unavailable', 'unavailable', 'unavailable', 'succeeded']);
    assert.deepEqual(
      (await client.listCharges({})).map((c) => [c.invoiceId, c.status]),
      [
        [reqs[0]!.invoiceId, 'declined'],
        [reqs[3]!.invoiceId, 'succeeded'],
        [reqs[4]!.invoiceId, 'succeeded'],
      ],
    );
    assert.equal(draws.length, 0);
    await assert.rejects(startProviderSimulator({ port: 0, faultRates: { decline: 0.6, '5xx': 0.6 } }), /at most 1/);
  });
});

describe('persistence', () => {
  test('a restarted simulator keeps its charges and idempotency keys', async () => {
    const stateFile = path.join(await tempDir(), 'nested', 'charges.ndjson');

    const first = await start({ stateFile });
    const paid = newCharge();
    const declinedReq = newCharge();
    const paidCharge = await first.provider.charge(paid);
    await injectFault(first.sim.url, { fault: 'decline' });
    const declined = await first.provider.charge(declinedReq);
    await first.sim.close();
    assert.equal((await readFile(stateFile, 'utf8')).trim().split('\n').length, 2);

    const second = await start({ stateFile });
    extra.push(second.sim);
    assert.deepEqual(await second.provider.listCharges({}), [paidCharge, declined]);
    assert.deepEqual(await second.provider.charge(paid), paidCharge);
    assert.deepEqual(await second.provider.charge(declinedReq), declined);
    await assert.rejects(
      second.provider.charge({ ...paid, amountMinor: '1' }),
      (err: unknown) => err instanceof ProviderRejectedError && err.status === 409,
    );
    const third = await second.provider.charge(newCharge());
    await second.sim.close();

    // A line torn by a crash mid-write is dropped, and later lines still start on their own.
    await appendFile(stateFile, '{"params":{"custo');
    const fourth = await start({ stateFile });
    extra.push(fourth.sim);
    assert.deepEqual(await fourth.provider.listCharges({}), [paidCharge, declined, third]);
    const fifth = await fourth.provider.charge(newCharge());
    await fourth.sim.close();

    const last = await start({ stateFile });
    extra.push(last.sim);
    assert.deepEqual(
      (await last.provider.listCharges({})).map((c) => c.id),
      [paidCharge.id, declined.id, third.id, fifth.id],
    );
  });

  test('a corrupt line in the middle refuses to start rather than forget a key', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'a.ndjson'), '{"not":"a charge"}\n');
    await assert.rejects(
      startProviderSimulator({ port: 0, stateFile: path.join(dir, 'a.ndjson') }),
      /a\.ndjson:1 is not a saved charge: .*params/s,
    );
    await writeFile(path.join(dir, 'b.ndjson'), '{"torn in the middle\n{}\n');
    await assert.rejects(
      startProviderSimulator({ port: 0, stateFile: path.join(dir, 'b.ndjson') }),
      /b\.ndjson:1 is not a saved charge: not JSON/,
    );
  });
});
