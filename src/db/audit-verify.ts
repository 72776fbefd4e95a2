import { createHash } from 'node:crypto';
import type { Pool } from './pool';
import { inTransaction } from './transaction';

export interface AuditChainProblem {
  /** Chain position (audit_log.chain_seq) where the problem shows. */
  seq: string;
  /** The row's id; null when the row is gone. */
  id: string | null;
  kind: 'altered' | 'missing' | 'broken_link';
  detail: string;
}

export interface AuditChainHead {
  seq: string;
  /** Hex. */
  hash: string;
}

export interface AuditChainReport {
  rows: number;
  ok: boolean;
  problems: AuditChainProblem[];
  /** The last row's position and hash: recorded outside the database, it later reveals a truncated tail. */
  head: AuditChainHead | null;
}

export interface VerifyOptions {
  /** A head recorded earlier: that row must still exist with that hash. */
  anchor?: AuditChainHead;
  /** Rows fetched per round trip (default 1000). */
  pageSize?: number;
}

interface ChainRow {
  seq: string;
  id: string;
  occurred_at: string;
  actor: string;
  action: string;
  subject_type: string;
  subject_id: string;
  details: string;
  before: string | null;
  after: string | null;
  prev_hash: Buffer;
  hash: Buffer;
}

const GENESIS: Buffer = Buffer.alloc(32);

// Each column in the text form the chain hashes (see migrations/0008_audit_chain.sql). Only these
// built-in renderings come from the database; the bytes and the hash are computed here, so a
// replaced audit_log_serialize() or trigger cannot vouch for altered rows.
const CHAIN_QUERY = `
  select chain_seq::text as seq, id::text as id,
         to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as occurred_at,
         actor, action, subject_type, subject_id,
         details::text as details, before::text as before, after::text as after, prev_hash, hash
    from audit_log
   order by chain_seq, id`;

/** Each field as its UTF-8 byte length (4-byte big-endian, -1 for NULL) followed by the bytes. */
function serialize(row: ChainRow): Buffer {
  const fields = [
    row.seq,
    row.id,
    row.occurred_at,
    row.actor,
    row.action,
    row.subject_type,
    row.subject_id,
    row.details,
    row.before,
    row.after,
  ];
  const parts: Buffer[] = [];
  for (const field of fields) {
    const length = Buffer.alloc(4);
    if (field === null) {
      length.writeInt32BE(-1);
      parts.push(length);
    } else {
      const bytes = Buffer.from(field, 'utf8');
      length.writeInt32BE(bytes.length);
      parts.push(length, bytes);
    }
  }
  return Buffer.concat(parts);
}

const rowHash = (row: ChainRow): Buffer => createHash('sha256').update(row.prev_hash).update(serialize(row)).digest();

/**
 * Recomputes every hash of the audit log's chain and checks every link, page by page in one
 * snapshot. Finds rows altered, deleted or substituted in the middle of the chain; deleting the
 * newest rows leaves a shorter valid chain, which only a comparison with a recorded `anchor` reveals.
 */
export async function verifyAuditChain(pool: Pool, options: VerifyOptions = {}): Promise<AuditChainReport> {
  const pageSize = options.pageSize ?? 1000;
  if (!Number.isSafeInteger(pageSize) || pageSize < 1) throw new RangeError(`pageSize must be a positive integer, got ${pageSize}`);
  const anchor = options.anchor && { seq: BigInt(options.anchor.seq), hash: options.anchor.hash.toLowerCase() };
  const problems: AuditChainProblem[] = [];
  let rows = 0;
  let lastSeq = 0n;
  let lastHash = GENESIS;
  let head: AuditChainHead | null = null;
  let anchorSeen = false;

  await inTransaction(pool, async (client) => {
    await client.query('set transaction isolation level repeatable read, read only');
    // A cursor streams the log in pages, so memory stays flat however long it is.
    await client.query(`declare audit_chain no scroll cursor for ${CHAIN_QUERY}`);
    for (;;) {
      const page = await client.query<ChainRow>(`fetch ${pageSize} from audit_chain`);
      for (const row of page.rows) {
        rows += 1;
        const seq = BigInt(row.seq);
        if (seq <= lastSeq) {
          problems.push({ seq: row.seq, id: row.id, kind: 'broken_link', detail: `position ${row.seq} occurs twice` });
        } else if (seq > lastSeq + 1n) {
          // The successor of a gap links to a row we no longer have: the gap is the finding.
          const first = lastSeq + 1n;
          const range = first === seq - 1n ? `row ${first} is` : `rows ${first}..${seq - 1n} are`;
          problems.push({ seq: first.toString(), id: null, kind: 'missing', detail: `${range} missing from the chain (deleted)` });
        } else if (!row.prev_hash.equals(lastHash)) {
          problems.push({
            seq: row.seq,
            id: row.id,
            kind: 'broken_link',
            detail: `prev_hash ${row.prev_hash.toString('hex')} is not the hash of ${lastSeq === 0n ? 'the genesis' : `row ${lastSeq}`} (${lastHash.toString('hex')}): an earlier row was replaced or rehashed`,
          });
        }
        const expected = rowHash(row);
        if (!expected.equals(row.hash)) {
          problems.push({
            seq: row.seq,
            id: row.id,
            kind: 'altered',
            detail: `stored hash ${row.hash.toString('hex')} but the row's values hash to ${expected.toString('hex')}`,
          });
        }
        if (anchor && seq === anchor.seq) {
          anchorSeen = true;
          if (row.hash.toString('hex') !== anchor.hash) {
            problems.push({
              seq: row.seq,
              id: row.id,
              kind: 'altered',
              detail: `hash ${row.hash.toString('hex')} differs from the anchored ${anchor.hash}`,
            });
          }
        }
        if (seq > lastSeq) {
          lastSeq = seq;
          lastHash = row.hash;
        }
        head = { seq: row.seq, hash: row.hash.toString('hex') };
      }
      if (page.rows.length < pageSize) break;
    }
  });

  if (anchor && !anchorSeen && anchor.seq > lastSeq) {
    problems.push({
      seq: anchor.seq.toString(),
      id: null,
      kind: 'missing',
      detail: `the anchored row ${anchor.seq} is gone and the chain ends at ${lastSeq}: its tail was deleted`,
    });
  }
  return { rows, ok: problems.length === 0, problems, head };
}
