import { randomUUID } from 'node:crypto';
import type { AuditActor } from '../db/audit';
import type { Queryable } from '../db/transaction';
import type { GrantAvailable } from '../domain/credit-drawdown';
import type { CurrencyCode } from '../domain/currencies';

/*
 * The SQL of prepaid credits (migrations/0018_credits_ledger.sql): grants, the append-only ledger
 * whose sums are every balance, and the automatic top-up setting.
 */

export const grantSources = ['purchased', 'promotional'] as const;
export type GrantSource = (typeof grantSources)[number];
export const grantStatuses = ['pending', 'active', 'declined'] as const;
export type GrantStatus = (typeof grantStatuses)[number];
export const ledgerEntryKinds = ['grant', 'drawdown', 'expiry', 'void', 'grant_void'] as const;
export type LedgerEntryKind = (typeof ledgerEntryKinds)[number];

export interface CreditGrant {
  id: string;
  customerId: string;
  /** The customer's external id. */
  customer: string;
  reference: string;
  source: GrantSource;
  currency: CurrencyCode;
  amount: string;
  priority: number;
  expiresAt: Date | null;
  status: GrantStatus;
  idempotencyKey: string | null;
  providerChargeId: string | null;
  declineCode: string | null;
  createdAt: Date;
  /** What the ledger says is left of it (the sum of its entries). */
  remaining: string;
}

export interface LedgerEntry {
  id: string;
  grantId: string;
  customerId: string;
  currency: CurrencyCode;
  kind: LedgerEntryKind;
  amount: string;
  invoiceId: string | null;
  balanceAfter: string;
  actor: string;
  createdAt: Date;
}

interface GrantRow {
  id: string;
  customer_id: string;
  external_id: string;
  reference: string;
  source: GrantSource;
  currency: CurrencyCode;
  amount: string;
  priority: number;
  expires_at: Date | null;
  status: GrantStatus;
  idempotency_key: string | null;
  provider_charge_id: string | null;
  decline_code: string | null;
  created_at: Date;
  remaining: string;
}

const grantSelect = `select g.id, g.customer_id, c.external_id, g.reference, g.source, g.currency, g.amount::text, g.priority, g.expires_at,
         g.status, g.idempotency_key, g.provider_charge_id, g.decline_code, g.created_at,
         coalesce((select sum(e.amount) from credit_ledger_entries e where e.grant_id = g.id), 0)::text as remaining
    from credit_grants g join customers c on c.id = g.customer_id`;

const toGrant = (r: GrantRow): CreditGrant => ({
  id: r.id,
  customerId: r.customer_id,
  customer: r.external_id,
  reference: r.reference,
  source: r.source,
  currency: r.currency,
  amount: r.amount,
  priority: r.priority,
  expiresAt: r.expires_at,
  status: r.status,
  idempotencyKey: r.idempotency_key,
  providerChargeId: r.provider_charge_id,
  declineCode: r.decline_code,
  createdAt: r.created_at,
  remaining: r.remaining,
});

interface EntryRow {
  id: string;
  grant_id: string;
  customer_id: string;
  currency: CurrencyCode;
  kind: LedgerEntryKind;
  amount: string;
  invoice_id: string | null;
  balance_after: string;
  actor: string;
  created_at: Date;
}

/** For queries over `credit_ledger_entries e`; order by `e.id` (the bigint), not the text column of the same name. */
const entryColumns =
  'e.id::text, e.grant_id, e.customer_id, e.currency, e.kind, e.amount::text, e.invoice_id, e.balance_after::text, e.actor, e.created_at';

const toEntry = (r: EntryRow): LedgerEntry => ({
  id: r.id,
  grantId: r.grant_id,
  customerId: r.customer_id,
  currency: r.currency,
  kind: r.kind,
  amount: r.amount,
  invoiceId: r.invoice_id,
  balanceAfter: r.balance_after,
  actor: r.actor,
  createdAt: r.created_at,
});

/** Serializes writes to one customer's ledger in one currency until the caller's transaction ends (running balances stay exact). */
export async function lockCreditLedger(db: Queryable, customerId: string, currency: string): Promise<void> {
  await db.query('select pg_advisory_xact_lock(hashtext($1))', [`credit-ledger:${customerId}:${currency}`]);
}

export interface NewGrant {
  customerId: string;
  reference: string;
  source: GrantSource;
  currency: CurrencyCode;
  amount: string;
  priority: number;
  expiresAt: Date | null;
  actor: AuditActor;
}

/**
 * Stores a grant under its natural key (customer, reference): promotional grants active, purchases
 * pending with the provider idempotency key `idempotencyKeyOf(id)`. Returns the grant that already
 * has the reference, unchanged, with created: false.
 */
export async function insertGrant(
  db: Queryable,
  grant: NewGrant,
  idempotencyKeyOf: (id: string) => string,
  now: Date,
): Promise<{ created: boolean; grant: CreditGrant }> {
  const id = randomUUID();
  const purchased = grant.source === 'purchased';
  const { rows } = await db.query<{ id: string }>(
    `insert into credit_grants (id, customer_id, reference, source, currency, amount, priority, expires_at, status, idempotency_key, actor, created_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     on conflict (customer_id, reference) do nothing returning id`,
    [
      id,
      grant.customerId,
      grant.reference,
      grant.source,
      grant.currency,
      grant.amount,
      grant.priority,
      grant.expiresAt,
      purchased ? 'pending' : 'active',
      purchased ? idempotencyKeyOf(id) : null,
      grant.actor,
      now,
    ],
  );
  if (rows[0]) return { created: true, grant: (await getGrant(db, rows[0].id))! };
  return { created: false, grant: (await findGrant(db, grant.customerId, grant.reference))! };
}

export async function getGrant(db: Queryable, id: string): Promise<CreditGrant | undefined> {
  const { rows } = await db.query<GrantRow>(`${grantSelect} where g.id = $1`, [id]);
  return rows[0] && toGrant(rows[0]);
}

export async function findGrant(db: Queryable, customerId: string, reference: string): Promise<CreditGrant | undefined> {
  const { rows } = await db.query<GrantRow>(`${grantSelect} where g.customer_id = $1 and g.reference = $2`, [customerId, reference]);
  return rows[0] && toGrant(rows[0]);
}

/** Locks the grant row for settling its purchase in the caller's transaction. */
export async function lockGrant(db: Queryable, id: string): Promise<CreditGrant | undefined> {
  await db.query('select 1 from credit_grants where id = $1 for update', [id]);
  return getGrant(db, id);
}

/** Settles a pending purchase, once: active with the provider's charge, or declined with its code. */
export async function settleGrantPurchase(
  db: Queryable,
  id: string,
  outcome: { status: 'active' | 'declined'; providerChargeId: string; declineCode: string | null },
): Promise<void> {
  await db.query(`update credit_grants set status = $2, provider_charge_id = $3, decline_code = $4 where id = $1 and status = 'pending'`, [
    id,
    outcome.status,
    outcome.providerChargeId,
    outcome.declineCode,
  ]);
}

/** A customer's grants in a currency (or all currencies), newest first. */
export async function listGrants(db: Queryable, customerId: string, currency?: string): Promise<CreditGrant[]> {
  const { rows } = await db.query<GrantRow>(
    `${grantSelect} where g.customer_id = $1 and ($2::text is null or g.currency = $2) order by g.created_at desc, g.id desc`,
    [customerId, currency ?? null],
  );
  return rows.map(toGrant);
}

/** Active grants in the currency not expired at `at` with credit left: what a drawdown may use. */
export async function grantsAvailable(db: Queryable, customerId: string, currency: string, at: Date): Promise<GrantAvailable[]> {
  const { rows } = await db.query<{ id: string; priority: number; expires_at: Date | null; created_at: Date; remaining: string }>(
    `select g.id, g.priority, g.expires_at, g.created_at, sum(e.amount)::text as remaining
       from credit_grants g join credit_ledger_entries e on e.grant_id = g.id
      where g.customer_id = $1 and g.currency = $2 and g.status = 'active' and (g.expires_at is null or g.expires_at > $3)
      group by g.id having sum(e.amount) > 0`,
    [customerId, currency, at],
  );
  return rows.map((r) => ({ id: r.id, priority: r.priority, expiresAt: r.expires_at, createdAt: r.created_at, remaining: r.remaining }));
}

/** The customer's balance in the currency: the sum of its ledger entries ("0" with none). */
export async function creditBalance(db: Queryable, customerId: string, currency: string): Promise<string> {
  const { rows } = await db.query<{ balance: string }>(
    'select coalesce(sum(amount), 0)::text as balance from credit_ledger_entries where customer_id = $1 and currency = $2',
    [customerId, currency],
  );
  return rows[0]!.balance;
}

/**
 * The credit the usage of the period starting at `periodStart` may spend (a `credit_only` spend
 * limit): the balance plus what the period's interim invoices drew, net of what voiding gave
 * back. Usage billed on an interim invoice is still in the period's priced usage, so the credit
 * that paid for it counts once: without it, progressive billing would stop usage early. One
 * statement, so both parts are one snapshot.
 */
export async function creditForPeriod(db: Queryable, customerId: string, currency: string, periodStart: Date): Promise<string> {
  const { rows } = await db.query<{ credit: string }>(
    `select coalesce(sum(e.amount) filter (
              where i.kind is distinct from 'interim' or i.period_start <> $3 or e.kind not in ('drawdown', 'void')
            ), 0)::text as credit
       from credit_ledger_entries e left join invoices i on i.id = e.invoice_id
      where e.customer_id = $1 and e.currency = $2`,
    [customerId, currency, periodStart],
  );
  return rows[0]!.credit;
}

export interface NewLedgerEntry {
  grantId: string;
  customerId: string;
  currency: string;
  kind: LedgerEntryKind;
  /** Signed: grant and void positive, drawdown, expiry and grant_void negative. */
  amount: string;
  invoiceId: string | null;
  actor: string;
}

/**
 * Appends an entry with its running balance; the caller holds the ledger lock (lockCreditLedger).
 * An entry whose natural key is already in the ledger is not written again: returns undefined.
 */
export async function appendLedgerEntry(db: Queryable, entry: NewLedgerEntry, now: Date): Promise<LedgerEntry | undefined> {
  const { rows } = await db.query<EntryRow>(
    `insert into credit_ledger_entries as e (grant_id, customer_id, currency, kind, amount, invoice_id, balance_after, actor, created_at)
     select $1, $2, $3, $4, $5::numeric, $6,
            coalesce((select sum(amount) from credit_ledger_entries where customer_id = $2 and currency = $3), 0) + $5::numeric, $7, $8
     on conflict do nothing returning ${entryColumns}`,
    [entry.grantId, entry.customerId, entry.currency, entry.kind, entry.amount, entry.invoiceId, entry.actor, now],
  );
  return rows[0] && toEntry(rows[0]);
}

/** The ledger of a customer (one currency or all), oldest first, keyset-paginated on the entry id. */
export async function listLedger(
  db: Queryable,
  customerId: string,
  currency: string | undefined,
  limit: number,
  after?: string,
): Promise<LedgerEntry[]> {
  const { rows } = await db.query<EntryRow>(
    `select ${entryColumns} from credit_ledger_entries e
      where e.customer_id = $1 and ($2::text is null or e.currency = $2) and ($3::bigint is null or e.id > $3)
      order by e.id limit ${Math.trunc(limit)}`,
    [customerId, currency ?? null, after ?? null],
  );
  return rows.map(toEntry);
}

/** The grant's void entry, if it was voided. */
export async function grantVoidOf(db: Queryable, grantId: string): Promise<LedgerEntry | undefined> {
  const { rows } = await db.query<EntryRow>(
    `select ${entryColumns} from credit_ledger_entries e where e.grant_id = $1 and e.kind = 'grant_void'`,
    [grantId],
  );
  return rows[0] && toEntry(rows[0]);
}

/** Every ledger entry naming the invoice (its drawdowns, their reversals, re-expiries). */
export async function entriesForInvoice(db: Queryable, invoiceId: string): Promise<LedgerEntry[]> {
  const { rows } = await db.query<EntryRow>(`select ${entryColumns} from credit_ledger_entries e where e.invoice_id = $1 order by e.id`, [
    invoiceId,
  ]);
  return rows.map(toEntry);
}

/** The ledgers to reconcile: every entry of one customer, or of all, in write order. */
export async function ledgerOf(db: Queryable, customerId: string | null): Promise<LedgerEntry[]> {
  const { rows } = await db.query<EntryRow>(
    `select ${entryColumns} from credit_ledger_entries e where ($1::uuid is null or e.customer_id = $1) order by e.id`,
    [customerId],
  );
  return rows.map(toEntry);
}

/** The grants of one customer, or of all, for reconciliation. */
export async function grantsOf(db: Queryable, customerId: string | null): Promise<CreditGrant[]> {
  const { rows } = await db.query<GrantRow>(`${grantSelect} where ($1::uuid is null or g.customer_id = $1) order by g.created_at, g.id`, [
    customerId,
  ]);
  return rows.map(toGrant);
}

export interface AutoTopUp {
  currency: CurrencyCode;
  threshold: string;
  amount: string;
  enabled: boolean;
  updatedAt: Date;
}

export async function getAutoTopUp(db: Queryable, customerId: string, currency: string): Promise<AutoTopUp | undefined> {
  const { rows } = await db.query<{ currency: CurrencyCode; threshold: string; amount: string; enabled: boolean; updated_at: Date }>(
    'select currency, threshold::text, amount::text, enabled, updated_at from credit_auto_top_ups where customer_id = $1 and currency = $2',
    [customerId, currency],
  );
  const r = rows[0];
  return r && { currency: r.currency, threshold: r.threshold, amount: r.amount, enabled: r.enabled, updatedAt: r.updated_at };
}

/** Sets the customer's automatic top-up in the currency; returns the setting it replaced. */
export async function setAutoTopUp(
  db: Queryable,
  customerId: string,
  setting: Omit<AutoTopUp, 'updatedAt'>,
  now: Date,
): Promise<AutoTopUp | undefined> {
  const before = await getAutoTopUp(db, customerId, setting.currency);
  await db.query(
    `insert into credit_auto_top_ups (customer_id, currency, threshold, amount, enabled, updated_at) values ($1, $2, $3, $4, $5, $6)
     on conflict (customer_id, currency) do update
       set threshold = excluded.threshold, amount = excluded.amount, enabled = excluded.enabled, updated_at = excluded.updated_at`,
    [customerId, setting.currency, setting.threshold, setting.amount, setting.enabled, now],
  );
  return before;
}
