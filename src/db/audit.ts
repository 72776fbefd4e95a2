import type pg from 'pg';

/** Who acted: an API key (`key:<id>`), a workflow (`workflow:<id>`), the admin CLI, or the system itself. */
export type AuditActor = `key:${string}` | `workflow:${string}` | 'cli' | 'system';

export interface AuditEntry {
  actor: AuditActor;
  /** `<subject>.<verb>`, e.g. `api_key.revoked`. */
  action: string;
  subjectType: string;
  subjectId: string;
  /** Never secrets: the log is kept forever and read by people. */
  details?: Record<string, unknown>;
  /** The subject's state the change replaced, when the caller has it (same rule: no secrets). */
  before?: Record<string, unknown>;
  /** The subject's state the change produced. */
  after?: Record<string, unknown>;
}

/**
 * Appends an audit entry. Pass the client of the transaction making the change, so the entry
 * commits (or rolls back) with it. The database chains it to the previous entry
 * (migrations/0008_audit_chain.sql) and holds the chain's lock until that transaction ends, so
 * record the entry late in a transaction rather than before slow work.
 */
export async function recordAudit(client: Pick<pg.ClientBase, 'query'>, entry: AuditEntry): Promise<void> {
  await client.query(
    'insert into audit_log (actor, action, subject_type, subject_id, details, before, after) values ($1, $2, $3, $4, $5, $6, $7)',
    [
      entry.actor,
      entry.action,
      entry.subjectType,
      entry.subjectId,
      JSON.stringify(entry.details ?? {}),
      entry.before === undefined ? null : JSON.stringify(entry.before),
      entry.after === undefined ? null : JSON.stringify(entry.after),
    ],
  );
}
