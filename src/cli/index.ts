/**
 * `npm run cli -- <command>`: administration from a terminal, e.g. creating the first admin key.
 * Talks to DATABASE_URL, or to the embedded PostgreSQL that `npm start` runs.
 */
import { Command } from 'commander';
import { loadConfig } from '../config';
import { embeddedUrl } from '../db/embedded';
import { keysCommand } from './keys';

const config = loadConfig();
const databaseUrl = config.DATABASE_URL ?? embeddedUrl(config.PG_PORT, 'meterflow');

const program = new Command('meterflow')
  .description('meterflow administration')
  .showHelpAfterError()
  .addCommand(keysCommand(config, databaseUrl, (line) => process.stdout.write(`${line}\n`)));

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
