import { recordAudit, type AuditActor } from '../db/audit';
import type { Queryable } from '../db/transaction';
import type { TaxRateTerms, TaxRateToApply } from '../domain/taxes';

export interface StoredTaxRate extends TaxRateToApply {
  customerId: string;
  createdAt: Date;
  archivedAt: Date | null;
}

interface TaxRateRow {
  id: string;
  customer_id: string;
  code: string;
  name: string;
  percentage: string;
  inclusive: boolean;
  meter: string | null;
  base_fee: boolean;
  created_at: Date;
  archived_at: Date | null;
}

const columns = 't.id, t.customer_id, t.code, t.name, t.percentage::text, t.inclusive, t.meter, t.base_fee, t.created_at, t.archived_at';

const toRate = (r: TaxRateRow): StoredTaxRate => ({
  id: r.id,
  customerId: r.customer_id,
  code: r.code,
  name: r.name,
  percentage: r.percentage,
  inclusive: r.inclusive,
  meter: r.meter,
  base_fee: r.base_fee,
  createdAt: r.created_at,
  archivedAt: r.archived_at,
});

/** Serializes changes to one customer's tax rates until the caller's transaction ends. */
export async function lockCustomerTaxRates(db: Queryable, customerId: string): Promise<void> {
  await db.query('select pg_advisory_xact_lock(hashtext($1))', [`tax-rates:${customerId}`]);
}

/** The customer's active rates, oldest first: the order of their tax lines. */
export async function activeTaxRates(db: Queryable, customerId: string): Promise<StoredTaxRate[]> {
  const { rows } = await db.query<TaxRateRow>(
    `select ${columns} from tax_rates t where t.customer_id = $1 and t.archived_at is null order by t.created_at, t.id`,
    [customerId],
  );
  return rows.map(toRate);
}

/** Every rate the customers ever had, oldest first: reconciliation picks those in force at each invoice's finalization. */
export async function taxRatesOfCustomers(db: Queryable, customerIds: string[]): Promise<StoredTaxRate[]> {
  const { rows } = await db.query<TaxRateRow>(
    `select ${columns} from tax_rates t where t.customer_id = any($1) order by t.created_at, t.id`,
    [customerIds],
  );
  return rows.map(toRate);
}

/** Whether the rate applied to invoices drafted at `at`. */
export const inForceAt = (rate: StoredTaxRate, at: Date) => rate.createdAt <= at && (rate.archivedAt === null || rate.archivedAt > at);

/** Stores a rate with its audit entry. Run in a transaction holding the customer's tax-rate lock. */
export async function insertTaxRate(
  db: Queryable,
  customerId: string,
  rate: TaxRateTerms,
  actor: AuditActor,
  now: Date,
): Promise<StoredTaxRate> {
  const { rows } = await db.query<TaxRateRow>(
    `insert into tax_rates as t (customer_id, code, name, percentage, inclusive, meter, base_fee, created_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8) returning ${columns}`,
    [customerId, rate.code, rate.name, rate.percentage, rate.inclusive, rate.meter, rate.base_fee, now],
  );
  const stored = toRate(rows[0]!);
  await recordAudit(db, {
    actor,
    action: 'tax_rate.created',
    subjectType: 'tax_rate',
    subjectId: stored.id,
    details: { customer_id: customerId, ...rate },
  });
  return stored;
}

/** Archives the customer's active rate with this code, with its audit entry; undefined when there is none. */
export async function archiveTaxRate(
  db: Queryable,
  customerId: string,
  code: string,
  actor: AuditActor,
  now: Date,
): Promise<StoredTaxRate | undefined> {
  const { rows } = await db.query<TaxRateRow>(
    `update tax_rates t set archived_at = $3 where t.customer_id = $1 and t.code = $2 and t.archived_at is null returning ${columns}`,
    [customerId, code, now],
  );
  if (!rows[0]) return undefined;
  await recordAudit(db, { actor, action: 'tax_rate.archived', subjectType: 'tax_rate', subjectId: rows[0].id, details: { code } });
  return toRate(rows[0]);
}
