/**
 * `npm run audit:verify [-- --anchor <seq>:<hash>]`: recomputes the audit log's hash chain and
 * prints every problem, then the head to record outside the database; passing a head recorded
 * earlier as --anchor also catches deleted newest rows. Talks to DATABASE_URL, or to the embedded
 * PostgreSQL that `npm start` runs.
 * Exit status: 0 intact, 1 tampered, 2 could not verify (unreachable database, bad arguments).
 */
import { parseArgs } from 'node:util';
import { formatAuditReport, parseAnchor } from '../src/cli/audit';
import { describeDatabase } from '../src/cli/context';
import { loadConfig } from '../src/config';
import { verifyAuditChain, type AuditChainHead } from '../src/db/audit-verify';
import { embeddedUrl } from '../src/db/embedded';
import { createPool } from '../src/db/pool';

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
    const { lines, tampered } = formatAuditReport(await verifyAuditChain(pool, anchor ? { anchor } : {}));
    for (const line of lines) console.log(line);
    if (tampered) {
      console.error(tampered);
      return 1;
    }
    return 0;
  } catch (err) {
    console.error(
      `audit:verify: could not read the audit log at ${describeDatabase(databaseUrl)}: ${err instanceof Error ? err.message : String(err)}`,
    );
    return 2;
  } finally {
    await pool.end();
  }
}

void main().then((code) => process.exit(code));
