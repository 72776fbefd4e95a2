import type { Pool } from '../db/pool';

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

/** Creates the customer, or returns the existing one with the same external id (created: false). */
export async function createCustomer(pool: Pool, input: CustomerInput): Promise<{ created: boolean; customer: Customer }> {
  const { rows } = await pool.query<CustomerRow>(
    `insert into customers (external_id, name, currency) values ($1, $2, $3)
     on conflict (external_id) do nothing returning ${columns}`,
    [input.external_id, input.name, input.currency],
  );
  if (rows[0]) return { created: true, customer: toCustomer(rows[0]) };
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
