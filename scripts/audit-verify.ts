/**
 * `npm run audit:verify [-- --anchor <seq>:<hash>]`: recomputes the audit log's hash chain and
 * prints every problem, then the head to record outside the database; passing a head recorded
 * earlier as --anchor also catches deleted newest rows. Talks to DATABASE_URL, or to the embedded
 * PostgreSQL that `npm start` runs.
 * Exit status: 0 intact, 1 tampered, 2 could not verify (unreachable database, bad arguments).
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config';
import { verifyAuditChain, type AuditChainHead } from '../src/db/audit-verify';
import { embeddedUrl } from '../src/db/embedded';
import { createPool } from '../src/db/pool';

function parseAnchor(value: string | undefined): AuditChainHead | undefined {
  if (value === undefined) return undefined;
  const match = /^([1-9][0-9]*):([0-9a-fA-F]{64})$/.exec(value);
  if (!match) throw new Error(`--anchor must be <seq>:<64 hex digits>, as audit:verify prints the head; got ${value}`);
  return { seq: match[1]!, hash: match[2]! };
}

/** The URL without its password, to name the database in messages. */
function describe(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  url.password = '';
  return url.toString();
}

async function main(): Promise<number> {
  let anchor: AuditChainHead | undefined;
  let databaseUrl: string;
  try {
    anchor = parseAnchor(parseArgs({ options: { anchor: { type: 'string' } } }).values.anchor);
    const config = loadConfig();
    databaseUrl = config.DATABASE_URL ?? embeddedUrl(config.PG_PORT, 'meterflow');
  } catch (err) {
    console.error(`audit:verify: ${err instanceof Error ? err.message : String(err)}`);
    return 2;
  }

  const pool = createPool(databaseUrl, 1);
  try {
    const report = await verifyAuditChain(pool, anchor ? { anchor } : {});
    console.log(`audit log: ${report.rows} rows checked`);
    for (const p of report.problems) console.log(`  ${p.kind} at position ${p.seq}${p.id ? ` (id ${p.id})` : ''}: ${p.detail}`);
    if (report.head) console.log(`head: ${report.head.seq}:${report.head.hash}`);
    if (!report.ok) {
      console.error(`TAMPERED: the audit log fails verification (${report.problems.length} problem${report.problems.length === 1 ? '' : 's'})`);
      return 1;
    }
    console.log(report.head ? 'intact: every hash and link verifies' : 'intact: the audit log is empty');
    return 0;
  } catch (err) {
    console.error(`audit:verify: could not read the audit log at ${describe(databaseUrl)}: ${err instanceof Error ? err.message : String(err)}`);
    return 2;
  } finally {
    await pool.end();
  }
}

main().then((code) => process.exit(code));
