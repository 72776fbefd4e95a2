import { recordAudit, type AuditActor } from '../db/audit';
import type { Pool } from '../db/pool';
import { inTransaction } from '../db/transaction';

export interface Customer {
  id: string;
  externalId: string;
  name: string;
  currency: string;
  createdAt: Date;
}

interface CustomerRow {
  id: string;
  external_id: string;
  name: string;
  currency: string;
  created_at: Date;
}

const columns = 'id, external_id, name, currency, created_at';
const toCustomer = (r: CustomerRow): Customer => ({
  id: r.id,
  externalId: r.external_id,
  name: r.name,
  currency: r.currency,
  createdAt: r.created_at,
});

export interface CustomerInput {
  external_id: string;
  name: string;
  currency: string;
}

/**
 * Creates the customer, or returns the existing one with the same external id (created: false).
 * A creation and its audit entry commit together.
 */
export async function createCustomer(
  pool: Pool,
  input: CustomerInput,
  actor: AuditActor,
): Promise<{ created: boolean; customer: Customer }> {
  const created = await inTransaction(pool, async (tx) => {
    const { rows } = await tx.query<CustomerRow>(
      `insert into customers (external_id, name, currency) values ($1, $2, $3)
       on conflict (external_id) do nothing returning ${columns}`,
      [input.external_id, input.name, input.currency],
    );
    if (!rows[0]) return undefined;
    const customer = toCustomer(rows[0]);
    await recordAudit(tx, {
      actor,
      action: 'customer.created',
      subjectType: 'customer',
      subjectId: customer.id,
      details: { external_id: customer.externalId, name: customer.name, currency: customer.currency },
    });
    return customer;
  });
  if (created) return { created: true, customer: created };
  return { created: false, customer: (await getCustomer(pool, input.external_id))! };
}

export async function getCustomer(pool: Pool, externalId: string): Promise<Customer | undefined> {
  const { rows } = await pool.query<CustomerRow>(`select ${columns} from customers where external_id = $1`, [externalId]);
  return rows[0] && toCustomer(rows[0]);
}

export async function listCustomers(pool: Pool, limit: number, after?: string): Promise<Customer[]> {
  const { rows } = await pool.query<CustomerRow>(
    `select ${columns} from customers where ($2::text is null or external_id > $2) order by external_id limit $1`,
    [limit, after ?? null],
  );
  return rows.map(toCustomer);
}
