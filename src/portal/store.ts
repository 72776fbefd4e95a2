import type { Queryable } from '../db/transaction';

/** A portal session as stored: the token only as its HMAC. */
export interface PortalSession {
  id: string;
  customer: { id: string; externalId: string };
  expiresAt: Date;
  revokedAt: Date | null;
  createdBy: string;
  createdAt: Date;
}

interface SessionRow {
  id: string;
  customer_id: string;
  customer_external_id: string;
  expires_at: Date;
  revoked_at: Date | null;
  created_by: string;
  created_at: Date;
}

const columns = 's.id, s.customer_id, c.external_id as customer_external_id, s.expires_at, s.revoked_at, s.created_by, s.created_at';
const fromSessions = 'portal_sessions s join customers c on c.id = s.customer_id';

const toSession = (r: SessionRow): PortalSession => ({
  id: r.id,
  customer: { id: r.customer_id, externalId: r.customer_external_id },
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
  createdBy: r.created_by,
  createdAt: r.created_at,
});

export interface NewSessionRow {
  customerId: string;
  tokenHash: Buffer;
  pepperVersion: number;
  expiresAt: Date;
  createdBy: string;
  createdAt: Date;
}

export async function insertSession(db: Queryable, s: NewSessionRow): Promise<PortalSession> {
  const { rows } = await db.query<SessionRow>(
    `with s as (
       insert into portal_sessions (customer_id, token_hash, pepper_version, expires_at, created_by, created_at)
       values ($1, $2, $3, $4, $5, $6) returning *
     )
     select ${columns} from s join customers c on c.id = s.customer_id`,
    [s.customerId, s.tokenHash, s.pepperVersion, s.expiresAt, s.createdBy, s.createdAt],
  );
  return toSession(rows[0]!);
}

/** The session whose token hashes to one of `hashes` (one per configured pepper version). */
export async function findSessionByHashes(db: Queryable, hashes: readonly Buffer[]): Promise<PortalSession | undefined> {
  const { rows } = await db.query<SessionRow>(`select ${columns} from ${fromSessions} where s.token_hash = any($1)`, [hashes]);
  return rows[0] && toSession(rows[0]);
}

export async function findSession(db: Queryable, id: string, lock = false): Promise<PortalSession | undefined> {
  const { rows } = await db.query<SessionRow>(`select ${columns} from ${fromSessions} where s.id = $1${lock ? ' for update of s' : ''}`, [
    id,
  ]);
  return rows[0] && toSession(rows[0]);
}

export async function revokeSession(db: Queryable, id: string, at: Date): Promise<PortalSession> {
  await db.query('update portal_sessions set revoked_at = $2 where id = $1 and revoked_at is null', [id, at]);
  return (await findSession(db, id))!;
}
