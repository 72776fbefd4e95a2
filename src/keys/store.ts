import type { Scope } from './principal';
import type { Queryable } from '../db/transaction';
import type { KeyEnvironment } from './format';

/** Anything that runs SQL: the pool, or the client of an open transaction. */

export interface ApiKey {
  id: string;
  name: string;
  environment: KeyEnvironment;
  scopes: Scope[];
  customer: { id: string; externalId: string } | null;
  start: string;
  pepperVersion: number;
  ratePerSecond: number;
  burst: number;
  expiresAt: Date | null;
  revokedAt: Date | null;
  replacedBy: string | null;
  createdBy: string;
  createdAt: Date;
}

/** A key row as verification sees it: with the stored HMAC. */
export interface StoredKey extends ApiKey {
  keyHash: Buffer;
}

interface KeyRow {
  id: string;
  name: string;
  environment: KeyEnvironment;
  scopes: Scope[];
  customer_id: string | null;
  customer_external_id: string | null;
  start: string;
  pepper_version: number;
  rate_per_second: number;
  burst: number;
  expires_at: Date | null;
  revoked_at: Date | null;
  replaced_by: string | null;
  created_by: string;
  created_at: Date;
  key_hash: Buffer;
}

const columns = `k.id, k.name, k.environment, k.scopes, k.customer_id, c.external_id as customer_external_id, k.start,
  k.pepper_version, k.rate_per_second, k.burst, k.expires_at, k.revoked_at, k.replaced_by, k.created_by, k.created_at, k.key_hash`;
const fromKeys = 'api_keys k left join customers c on c.id = k.customer_id';

const toKey = (r: KeyRow): StoredKey => ({
  id: r.id,
  name: r.name,
  environment: r.environment,
  scopes: r.scopes,
  customer: r.customer_id && r.customer_external_id ? { id: r.customer_id, externalId: r.customer_external_id } : null,
  start: r.start,
  pepperVersion: r.pepper_version,
  ratePerSecond: r.rate_per_second,
  burst: r.burst,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
  replacedBy: r.replaced_by,
  createdBy: r.created_by,
  createdAt: r.created_at,
  keyHash: r.key_hash,
});

export interface KeyRowInput {
  name: string;
  environment: KeyEnvironment;
  scopes: readonly Scope[];
  customerId: string | null;
  keyHash: Buffer;
  pepperVersion: number;
  start: string;
  ratePerSecond: number;
  burst: number;
  expiresAt: Date | null;
  createdBy: string;
  createdAt: Date;
}

export async function insertKey(db: Queryable, k: KeyRowInput): Promise<StoredKey> {
  const { rows } = await db.query<KeyRow>(
    `with k as (
       insert into api_keys (name, environment, scopes, customer_id, key_hash, pepper_version, start, rate_per_second, burst, expires_at, created_by, created_at)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) returning *)
     select ${columns} from k left join customers c on c.id = k.customer_id`,
    [
      k.name,
      k.environment,
      k.scopes,
      k.customerId,
      k.keyHash,
      k.pepperVersion,
      k.start,
      k.ratePerSecond,
      k.burst,
      k.expiresAt,
      k.createdBy,
      k.createdAt,
    ],
  );
  return toKey(rows[0]!);
}

/** One key; `lock` takes a row lock so concurrent revoke/rotate/update of the same key serialize. */
export async function findKey(db: Queryable, id: string, lock = false): Promise<StoredKey | undefined> {
  const { rows } = await db.query<KeyRow>(`select ${columns} from ${fromKeys} where k.id = $1${lock ? ' for update of k' : ''}`, [id]);
  return rows[0] && toKey(rows[0]);
}

/** The verification lookup: the presented key's HMAC under every configured pepper version. */
export async function findKeyByHashes(db: Queryable, hashes: readonly Buffer[]): Promise<StoredKey | undefined> {
  const { rows } = await db.query<KeyRow>(`select ${columns} from ${fromKeys} where k.key_hash = any($1::bytea[])`, [hashes]);
  return rows[0] && toKey(rows[0]);
}

/** Oldest first; `after` is the id of the last key of the previous page. */
export async function listKeys(
  db: Queryable,
  opts: { limit: number; after?: string | undefined; customerId?: string | undefined },
): Promise<StoredKey[]> {
  const { rows } = await db.query<KeyRow>(
    `select ${columns} from ${fromKeys}
     where ($2::uuid is null or (k.created_at, k.id) > (select created_at, id from api_keys where id = $2))
       and ($3::uuid is null or k.customer_id = $3)
     order by k.created_at, k.id limit $1`,
    [opts.limit, opts.after ?? null, opts.customerId ?? null],
  );
  return rows.map(toKey);
}

export interface KeyChanges {
  name?: string;
  scopes?: readonly Scope[];
  expiresAt?: Date | null;
  ratePerSecond?: number;
  burst?: number;
  revokedAt?: Date;
  replacedBy?: string;
  keyHash?: Buffer;
  pepperVersion?: number;
}

const changeColumns: Record<keyof KeyChanges, string> = {
  name: 'name',
  scopes: 'scopes',
  expiresAt: 'expires_at',
  ratePerSecond: 'rate_per_second',
  burst: 'burst',
  revokedAt: 'revoked_at',
  replacedBy: 'replaced_by',
  keyHash: 'key_hash',
  pepperVersion: 'pepper_version',
};

/** Applies the given changes; the table's trigger tells every API process to drop its cached copy. */
export async function updateKey(db: Queryable, id: string, changes: KeyChanges): Promise<StoredKey> {
  const entries = (Object.keys(changes) as Array<keyof KeyChanges>).filter((k) => changes[k] !== undefined);
  const sets = entries.map((k, i) => `${changeColumns[k]} = $${i + 2}`);
  const { rows } = await db.query<KeyRow>(
    `with k as (update api_keys set ${sets.join(', ')} where id = $1 returning *)
     select ${columns} from k left join customers c on c.id = k.customer_id`,
    [id, ...entries.map((k) => changes[k])],
  );
  return toKey(rows[0]!);
}

export async function findCustomerId(db: Queryable, externalId: string): Promise<string | undefined> {
  const { rows } = await db.query<{ id: string }>('select id from customers where external_id = $1', [externalId]);
  return rows[0]?.id;
}

/** Whether some key can still administer keys: without one, the API cannot be used at all. */
export async function hasUsableAdminKey(db: Queryable, now: Date): Promise<boolean> {
  const { rowCount } = await db.query(
    `select 1 from api_keys where 'keys:admin' = any(scopes) and customer_id is null and revoked_at is null
       and (expires_at is null or expires_at > $1) limit 1`,
    [now],
  );
  return (rowCount ?? 0) > 0;
}

/** Moves a key to the current pepper; the version guard makes concurrent rehashes harmless. */
export async function rehashKey(db: Queryable, id: string, from: number, to: { keyHash: Buffer; pepperVersion: number }): Promise<void> {
  await db.query('update api_keys set key_hash = $2, pepper_version = $3 where id = $1 and pepper_version = $4', [
    id,
    to.keyHash,
    to.pepperVersion,
    from,
  ]);
}
