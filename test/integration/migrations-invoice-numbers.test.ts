import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Pool } from '../../src/db/pool';
import { createCustomer } from '../../src/customers/store';
import { defaultIssuer } from '../../src/invoices/issuer';
import { InvoiceService } from '../../src/invoices/service';
import { migrateSteps, migrationsBefore, scratchDatabase, type ScratchDatabase } from '../support/migration-steps';

/*
 * migrations/0019_invoice_numbers.sql on a database that already has invoices: those finalized
 * before it are numbered in the order they were finalized, per year, the series go on after
 * them, and drafts stay unnumbered; the down migration takes it all away again.
 */
let scratch: ScratchDatabase | undefined;
let url: string;
let pool: Pool;

const before19 = migrationsBefore('0019');
const migrateTo = (direction: 'up' | 'down', count: number) => migrateSteps(url, direction, count);

/** Invoices by the month their period starts: status and finalization as they were before 0019. */
const history = [
  { month: '2025-11', status: 'paid', finalizedAt: '2025-12-01T00:10:00Z' },
  { month: '2025-12', status: 'void', finalizedAt: '2026-01-01T00:10:00Z' },
  { month: '2025-10', status: 'finalized', finalizedAt: '2025-11-01T00:10:00Z' },
  { month: '2026-01', status: 'void', finalizedAt: null },
  { month: '2026-02', status: 'draft', finalizedAt: null },
  { month: '2026-03', status: 'draft', finalizedAt: null },
] as const;
const ids = new Map<string, string>();

before(async () => {
  scratch = await scratchDatabase('numbers', 4);
  ({ url, pool } = scratch);
  await migrateTo('up', before19);
  const { customer } = await createCustomer(pool, { external_id: 'acme', name: 'Acme Ltd', currency: 'USD' }, 'system');
  // Rows as the schema before 0019 holds them, written in SQL: today's stores write columns of later migrations.
  await pool.query(
    `insert into plans (code, name, currency, base_fee, charges, billing_interval)
     values ('flat', 'Flat', 'USD', 10.00, '[]', '{"kind": "calendar_month"}')`,
  );
  const { rows: subscriptions } = await pool.query<{ id: string }>(
    `insert into subscriptions (customer_id, plan_code, anchor) values ($1, 'flat', '2025-10-01T00:00:00Z') returning id`,
    [customer.id],
  );
  const subscriptionId = subscriptions[0]!.id;
  for (const h of history) {
    const start = new Date(`${h.month}-01T00:00:00Z`);
    const end = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
    const { rows } = await pool.query<{ id: string }>(
      `insert into invoices (customer_id, subscription_id, plan_code, currency, period_start, period_end, status, usage, total, created_at,
                             finalized_at, paid_at, voided_at, void_reason)
       values ($1, $2, 'flat', 'USD', $3, $4, $5, '{}', 10, $4, $6, $7, $8, $9) returning id`,
      [
        customer.id,
        subscriptionId,
        start,
        end,
        h.status,
        h.finalizedAt,
        h.status === 'paid' ? end : null,
        h.status === 'void' ? end : null,
        h.status === 'void' ? 'test' : null,
      ],
    );
    ids.set(h.month, rows[0]!.id);
  }
});

after(() => scratch?.drop());

const numbers = async () =>
  Object.fromEntries(
    await Promise.all(
      history.map(async (h) => [
        h.month,
        (await pool.query<{ number: string | null }>('select number from invoices where id = $1', [ids.get(h.month)])).rows[0]!.number,
      ]),
    ),
  );

test('0019 numbers the invoices finalized before it by finalization order and year; the series go on after them', async () => {
  await migrateTo('up', 1);
  assert.deepEqual(await numbers(), {
    '2025-10': 'INV-2025-000001',
    '2025-11': 'INV-2025-000002',
    '2025-12': 'INV-2026-000001',
    '2026-01': null,
    '2026-02': null,
    '2026-03': null,
  });
  const { rows } = await pool.query<{ seller: unknown; bill_to: unknown }>('select seller, bill_to from invoices where id = $1', [
    ids.get('2025-10'),
  ]);
  assert.deepEqual(rows[0], { seller: null, bill_to: { name: 'Acme Ltd', external_id: 'acme' } });

  const invoices = new InvoiceService(pool, { now: () => new Date('2026-04-01T00:10:00Z') });
  assert.ok((await invoices.finalize(ids.get('2026-02')!, 'system', defaultIssuer())).ok);
  assert.equal((await numbers())['2026-02'], 'INV-2026-000002');

  const document = await invoices.document('system', ids.get('2025-11')!, 'html');
  assert.ok(document.ok);
  assert.match(document.value.body.toString('utf8'), /Seller details were not recorded for this invoice/);
  assert.match(document.value.body.toString('utf8'), /Acme Ltd/);
});

test('0019 down and up again', async () => {
  await migrateTo('down', 1);
  const { rows } = await pool.query<{ n: string }>(
    `select count(*) as n from information_schema.columns where table_name = 'invoices' and column_name in ('number', 'seller', 'bill_to')`,
  );
  assert.equal(rows[0]!.n, '0');
  await migrateTo('up', 1);
  assert.equal((await numbers())['2025-12'], 'INV-2026-000001');
});
