import assert from 'node:assert/strict';
import { test } from 'node:test';
import { envSchema } from '../../src/config';
import { DEFAULT_TOP_UP_URL, topUpLinkFor } from '../../src/domain/top-up-link';
import { EntitlementStore } from '../../src/entitlements/store';

test("the default top-up link is the customer's own credits resource", () => {
  assert.equal(envSchema.parse({}).TOP_UP_URL, DEFAULT_TOP_UP_URL);
  assert.equal(topUpLinkFor(DEFAULT_TOP_UP_URL, 'acme'), '/v1/customers/acme/credits');
});

test('the placeholder takes the external id URL-encoded, everywhere it appears; a template without it is one link for all', () => {
  const cases: Array<[string, string, string]> = [
    ['https://billing.example.com/top-up?customer={customer}', 'acme', 'https://billing.example.com/top-up?customer=acme'],
    ['/portal/{customer}/credits#{customer}', 'a b/c', '/portal/a%20b%2Fc/credits#a%20b%2Fc'],
    ['/top-up', 'acme', '/top-up'],
  ];
  for (const [template, customer, link] of cases) assert.equal(topUpLinkFor(template, customer), link);
});

test('the entitlement store answers each customer with its own link', () => {
  const store = new EntitlementStore({ now: () => new Date() }, '/upgrade', 'https://pay.example.com/{customer}');
  assert.equal(store.topUpUrlFor('acme'), 'https://pay.example.com/acme');
  assert.equal(store.topUpUrlFor('globex'), 'https://pay.example.com/globex');
});
