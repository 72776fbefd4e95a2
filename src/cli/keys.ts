import { Command, Option } from 'commander';
import { z } from 'zod';
import { scopes } from '../keys/principal';
import { keyToJson } from '../api/routes/keys';
import { systemClock } from '../clock';
import { Identifier, InstantSchema } from '../domain/edge-schemas';
import { loadPeppers } from '../keys/pepper';
import { KeyService } from '../keys/service';
import { keyStatus } from '../keys/status';
import type { ApiKey } from '../keys/store';
import { CliError, exitCodes, parseInput, unwrapForCli, withDatabase, type CliContext } from './context';
import { wantsJson } from './output';

const CreateOptions = z.object({
  name: Identifier,
  scopes: z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.enum(scopes)).min(1)),
  env: z.enum(['live', 'test']),
  customer: Identifier.optional(),
  expiresAt: InstantSchema.optional(),
  rate: z.coerce.number().int().min(1).max(100_000).optional(),
  burst: z.coerce.number().int().min(0).max(1_000_000).optional(),
});

function describeKey(k: ApiKey): string {
  const status = keyStatus(k, systemClock.now());
  const customer = k.customer ? ` customer=${k.customer.externalId}` : '';
  const expiry = k.expiresAt ? ` expires=${k.expiresAt.toISOString()}` : '';
  return `${k.id}  ${k.start}…  ${status.padEnd(7)}  ${k.environment}  "${k.name}"  scopes=${k.scopes.join(',')}${customer}${expiry}  pepper=v${k.pepperVersion}`;
}

/** Runs one command against the database with a key service acting as `cli`, then disconnects. */
async function withService<T>(ctx: CliContext, work: (service: KeyService) => Promise<T>): Promise<T> {
  const { peppers } = await loadPeppers(ctx.config);
  return withDatabase(ctx, (pool) =>
    work(
      new KeyService({
        pool,
        peppers,
        clock: systemClock,
        defaults: { ratePerSecond: ctx.config.API_KEY_DEFAULT_RATE_PER_SECOND, burst: ctx.config.API_KEY_DEFAULT_BURST },
      }),
    ),
  );
}

/** The API's wire shape of a key (never its secret, which `create` alone prints, beside it). */
const keyJson = (k: ApiKey) => keyToJson(k, systemClock.now());

export function keysCommand(ctx: CliContext): Command {
  const out = ctx.stdout;
  const keys = new Command('keys').description('manage API keys (acts as "cli" in the audit log)');

  keys
    .command('create')
    .description('create an API key and print its secret, once; bootstraps the first keys:admin key')
    .requiredOption('--name <name>', 'what the key is for')
    .requiredOption('--scopes <list>', `comma-separated: ${scopes.join(', ')}`)
    .addOption(new Option('--env <environment>', 'live or test').choices(['live', 'test']).default('live'))
    .option('--customer <externalId>', 'restrict the key to one customer')
    .option('--expires-at <instant>', 'RFC 3339 expiry, e.g. 2027-01-01T00:00:00Z')
    .option('--rate <perSecond>', 'steady requests per second')
    .option('--burst <requests>', 'extra requests per 10 s above the steady rate')
    .action(async (raw: Record<string, unknown>, command: Command) => {
      const parsed = CreateOptions.safeParse(raw);
      if (!parsed.success)
        throw new CliError(parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('\n'), exitCodes.cannotRun);
      const o = parsed.data;
      const created = await withService(ctx, (service) =>
        service.create('cli', {
          name: o.name,
          environment: o.env,
          scopes: o.scopes,
          customer: o.customer,
          expiresAt: o.expiresAt ? new Date(o.expiresAt) : null,
          ratePerSecond: o.rate,
          burst: o.burst,
        }),
      );
      const { secret, key } = unwrapForCli(created);
      if (wantsJson(command)) {
        out(JSON.stringify({ ...keyJson(key), secret }, null, 2));
        return;
      }
      out(describeKey(key));
      out('The secret below is shown only now; it cannot be recovered, only rotated or revoked:');
      out(secret);
    });

  keys
    .command('list')
    .description('list keys, oldest first (never their secrets)')
    .action(async (_opts: unknown, command: Command) => {
      const json = wantsJson(command);
      const all: ApiKey[] = [];
      await withService(ctx, async (service) => {
        let after: string | undefined;
        for (;;) {
          const page = await service.list('cli', { limit: 500, after });
          if (json) all.push(...page);
          else for (const k of page) out(describeKey(k));
          if (page.length < 500) break;
          after = page[page.length - 1]!.id;
        }
      });
      if (json) out(JSON.stringify(all.map(keyJson), null, 2));
    });

  keys
    .command('revoke')
    .description('revoke a key at once, in every API process')
    .argument('<id>', 'key id (see `keys list`)')
    .action(async (id: string, _opts: unknown, command: Command) => {
      if (!z.uuid().safeParse(id).success) throw new CliError(`"${id}" is not a key id (a UUID; see \`keys list\`)`, exitCodes.cannotRun);
      const key = unwrapForCli(await withService(ctx, (service) => service.revoke('cli', id)));
      out(wantsJson(command) ? JSON.stringify(keyJson(key), null, 2) : describeKey(key));
    });

  keys
    .command('rotate')
    .description('issue a replacement key (printed once); the old one keeps working for the grace period, then expires')
    .argument('<id>', 'key id (see `keys list`)')
    .option('--grace-seconds <n>', 'how long the old key stays usable', '86400')
    .action(async (id: string, opts: { graceSeconds: string }, command: Command) => {
      if (!z.uuid().safeParse(id).success) throw new CliError(`"${id}" is not a key id (a UUID; see \`keys list\`)`, exitCodes.cannotRun);
      const graceSeconds = parseInput(
        z.coerce
          .number()
          .int()
          .min(0)
          .max(30 * 86_400),
        opts.graceSeconds,
        '--grace-seconds',
      );
      const rotated = unwrapForCli(await withService(ctx, (service) => service.rotate('cli', id, { graceSeconds })));
      if (wantsJson(command)) {
        out(JSON.stringify({ ...keyJson(rotated.key), secret: rotated.secret, previous: keyJson(rotated.previous) }, null, 2));
        return;
      }
      out(`${describeKey(rotated.key)}\nsecret (shown once): ${rotated.secret}\nprevious: ${describeKey(rotated.previous)}`);
    });

  return keys;
}
