import type pg from 'pg';

/** Who acted: an API key (`key:<id>`), the admin CLI, or the system itself. */
export type AuditActor = `key:${string}` | 'cli' | 'system';

export interface AuditEntry {
  actor: AuditActor;
  /** `<subject>.<verb>`, e.g. `api_key.revoked`. */
  action: string;
  subjectType: string;
  subjectId: string;
  /** Never secrets: the log is kept forever and read by people. */
  details?: Record<string, unknown>;
}

/**
 * Appends an audit entry. Pass the client of the transaction making the change, so the entry
 * commits (or rolls back) with it.
 */
export async function recordAudit(client: Pick<pg.ClientBase, 'query'>, entry: AuditEntry): Promise<void> {
  await client.query(
    'insert into audit_log (actor, action, subject_type, subject_id, details) values ($1, $2, $3, $4, $5)',
    [entry.actor, entry.action, entry.subjectType, entry.subjectId, JSON.stringify(entry.details ?? {})],
  );
}
