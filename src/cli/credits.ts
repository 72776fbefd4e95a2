import { Command } from 'commander';
import { z } from 'zod';
import { PageQuerySchema } from '../api/pagination';
import { systemClock } from '../clock';
import type { Client } from '@temporalio/client';
import type { CreditBalanceWatcher } from '../credits/balance-watcher';
import type { CreditExpiryTimers } from '../credits/expiry-timers';
import { AutoTopUpInputSchema, CreditGrantInputSchema } from '../credits/input';
import { CreditService } from '../credits/service';
import type { CreditGrant } from '../credits/store';
import type { Pool } from '../db/pool';
import { CurrencySchema } from '../domain/pricing/schema';
import { createHttpPaymentProvider } from '../provider/http-payment-provider';
import { CliError, exitCodes, parseInput, unwrapForCli, withDatabase, type CliContext } from './context';
import { emit, pageText, record, table } from './output';

/** Runs `step` with a client of the Temporal server the environment names, for that one step. */
async function withTemporal(ctx: CliContext, step: (client: Client) => Promise<void>): Promise<void> {
  // Loaded here only: the Temporal client adds half a second to every other command's start.
  const { Client: TemporalClient, Connection } = await import('@temporalio/client');
  const address = ctx.config.TEMPORAL_ADDRESS ?? `127.0.0.1:${ctx.config.TEMPORAL_PORT}`;
  const connection = await Connection.connect({ address, connectTimeout: '5s' });
  try {
    await step(new TemporalClient({ connection, namespace: ctx.config.TEMPORAL_NAMESPACE }));
  } finally {
    await connection.close();
  }
}

/** A grant's expiry timer is started on the Temporal server the environment names, for that one step. */
const cliExpiryTimers = (ctx: CliContext): CreditExpiryTimers => ({
  schedule: (grant) =>
    withTemporal(ctx, async (client) => {
      const { temporalCreditExpiryTimers } = await import('../credits/temporal-expiry-timers');
      await temporalCreditExpiryTimers({ client, taskQueue: ctx.config.TEMPORAL_TASK_QUEUE }).schedule(grant);
    }),
});

/** The customer's billing workflow hears of a credited grant the same way. */
const cliBalanceWatcher = (ctx: CliContext): CreditBalanceWatcher => ({
  grew: (customer) =>
    withTemporal(ctx, async (client) => {
      const { temporalCreditBalanceWatcher } = await import('../credits/temporal-balance-watcher');
      await temporalCreditBalanceWatcher(client).grew(customer);
    }),
});

/** The service on this pool: purchases go to the payment provider the environment names (the local simulator by default). */
const serviceOn = (ctx: CliContext, pool: Pool) =>
  new CreditService({
    pool,
    clock: systemClock,
    provider: createHttpPaymentProvider({
      baseUrl: ctx.config.PROVIDER_URL ?? `http://127.0.0.1:${ctx.config.PROVIDER_PORT}`,
      timeoutMs: ctx.config.PROVIDER_TIMEOUT_MS,
    }),
    timers: cliExpiryTimers(ctx),
    watcher: cliBalanceWatcher(ctx),
  });

/** The API's wire shapes, loaded by these commands only (the route module brings Express and the OpenAPI registry). */
const wireShapes = () => import('../api/routes/credits');

const grantRow = (g: CreditGrant) => [
  g.id,
  g.reference,
  g.source,
  g.status,
  `${g.amount} ${g.currency}`,
  g.remaining,
  g.priority,
  g.expiresAt?.toISOString() ?? 'never',
];
const grantHead = ['id', 'reference', 'source', 'status', 'amount', 'remaining', 'priority', 'expires'];

const CurrencyOption = z.object({ currency: CurrencySchema.optional() });
const LedgerOptions = PageQuerySchema.extend({ currency: CurrencySchema.optional() });

export function creditsCommand(ctx: CliContext): Command {
  const credits = new Command('credits').description(
    'prepaid credits, directly in the database; purchases through the payment provider (acts as "cli" in the audit log)',
  );

  credits
    .command('grant')
    .description('top up: purchase credit (charged through the payment provider) or grant promotional credit; repeating it is safe')
    .requiredOption('--customer <externalId>', 'the customer')
    .requiredOption('--reference <text>', 'your unique reference for this grant (the same reference never grants twice)')
    .requiredOption('--amount <decimal>', 'credit, in whole minor units of the currency, e.g. 50.00')
    .requiredOption('--currency <code>', 'ISO 4217, e.g. USD')
    .option('--promotional', 'grant it free instead of charging for it')
    .option('--priority <n>', 'drawn in ascending priority (0 first)', '0')
    .option('--expires-at <instant>', 'RFC 3339 instant when what is left expires (default never)')
    .action(
      async (
        opts: {
          customer: string;
          reference: string;
          amount: string;
          currency: string;
          promotional?: boolean;
          priority: string;
          expiresAt?: string;
        },
        command: Command,
      ) => {
        const priority = Number(opts.priority);
        const input = parseInput(
          CreditGrantInputSchema,
          {
            reference: opts.reference,
            source: opts.promotional ? 'promotional' : 'purchased',
            currency: opts.currency,
            amount: opts.amount,
            priority: Number.isNaN(priority) ? opts.priority : priority,
            expires_at: opts.expiresAt ?? null,
          },
          'options',
        );
        const result = await withDatabase(ctx, (pool) => serviceOn(ctx, pool).grant('cli', opts.customer, input));
        if (!result.ok && result.kind === 'unavailable') throw new CliError(result.message, exitCodes.cannotRun);
        const { created, grant } = unwrapForCli(result);
        const { grantToJson } = await wireShapes();
        emit(
          ctx,
          command,
          { ...grantToJson(grant), created },
          () => `${created ? 'credited' : 'already credited'}\n${table(grantHead, [grantRow(grant)])}`,
        );
      },
    );

  credits
    .command('balance')
    .description("a customer's balance, its grants with credit left, and its automatic top-up")
    .requiredOption('--customer <externalId>', 'the customer')
    .option('--currency <code>', "default: the customer's currency")
    .action(async (opts: { customer: string; currency?: string }, command: Command) => {
      const { currency } = parseInput(CurrencyOption, { currency: opts.currency }, 'options');
      const balance = unwrapForCli(await withDatabase(ctx, (pool) => serviceOn(ctx, pool).balance('cli', opts.customer, currency)));
      const { balanceToJson } = await wireShapes();
      emit(ctx, command, balanceToJson(balance), () =>
        [
          record({
            customer: balance.customer,
            balance: `${balance.balance} ${balance.currency}`,
            'auto top-up': balance.autoTopUp
              ? `${balance.autoTopUp.enabled ? 'on' : 'off'}: ${balance.autoTopUp.amount} when below ${balance.autoTopUp.threshold}`
              : 'none',
          }),
          table(grantHead, balance.grants.map(grantRow)),
        ].join('\n'),
      );
    });

  credits
    .command('ledger')
    .description("a customer's credit ledger, oldest entry first")
    .requiredOption('--customer <externalId>', 'the customer')
    .option('--currency <code>', 'only this currency')
    .option('--limit <n>', 'page size (at most 500)', '50')
    .option('--after <cursor>', "the previous page's cursor")
    .action(async (opts: { customer: string; currency?: string; limit: string; after?: string }, command: Command) => {
      const { customer: _customer, ...paging } = opts;
      const query = parseInput(LedgerOptions, paging, 'options');
      if (query.after !== undefined && !/^[1-9]\d{0,18}$/.test(query.after))
        throw new CliError('--after: must be a cursor printed by credits ledger', exitCodes.cannotRun);
      const rows = unwrapForCli(
        await withDatabase(ctx, (pool) =>
          serviceOn(ctx, pool).ledger('cli', opts.customer, {
            ...(query.currency ? { currency: query.currency } : {}),
            limit: query.limit + 1,
            ...(query.after ? { after: query.after } : {}),
          }),
        ),
      );
      const data = rows.slice(0, query.limit);
      const next = rows.length > query.limit ? (data.at(-1)?.id ?? null) : null;
      const { entryToJson } = await wireShapes();
      emit(ctx, command, { data: data.map(entryToJson), next_cursor: next }, () =>
        pageText(
          table(
            ['id', 'kind', 'amount', 'balance after', 'grant', 'invoice', 'at'],
            data.map((e) => [e.id, e.kind, `${e.amount} ${e.currency}`, e.balanceAfter, e.grantId, e.invoiceId, e.createdAt.toISOString()]),
          ),
          data.length,
          next,
        ),
      );
    });

  credits
    .command('auto-top-up')
    .description(
      'set the automatic top-up: purchase --amount when the balance falls below --threshold (drawdown, expiry, credit_only usage)',
    )
    .requiredOption('--customer <externalId>', 'the customer')
    .requiredOption('--currency <code>', 'ISO 4217, e.g. USD')
    .requiredOption('--threshold <decimal>', 'top up when the balance falls below this')
    .requiredOption('--amount <decimal>', 'credit each top-up purchases')
    .option('--disable', 'keep the setting but turn it off')
    .action(
      async (opts: { customer: string; currency: string; threshold: string; amount: string; disable?: boolean }, command: Command) => {
        const input = parseInput(
          AutoTopUpInputSchema,
          { currency: opts.currency, threshold: opts.threshold, amount: opts.amount, enabled: !opts.disable },
          'options',
        );
        const setting = unwrapForCli(await withDatabase(ctx, (pool) => serviceOn(ctx, pool).setAutoTopUp('cli', opts.customer, input)));
        const { autoTopUpToJson } = await wireShapes();
        emit(ctx, command, autoTopUpToJson(setting), () =>
          record({
            currency: setting.currency,
            threshold: setting.threshold,
            amount: setting.amount,
            enabled: setting.enabled ? 'yes' : 'no',
          }),
        );
      },
    );

  credits
    .command('void')
    .description('void a grant: what is left of it leaves the balance (one grant_void entry; a purchase is not refunded)')
    .requiredOption('--customer <externalId>', 'the customer')
    .requiredOption('--grant <id>', 'the grant id (credits grants lists them)')
    .action(async (opts: { customer: string; grant: string }, command: Command) => {
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(opts.grant))
        throw new CliError('--grant: must be a grant id (a UUID)', exitCodes.cannotRun);
      const { entry } = unwrapForCli(await withDatabase(ctx, (pool) => serviceOn(ctx, pool).voidGrant('cli', opts.customer, opts.grant)));
      const { entryToJson } = await wireShapes();
      emit(ctx, command, entryToJson(entry), () =>
        record({ entry: entry.id, kind: entry.kind, amount: `${entry.amount} ${entry.currency}`, 'balance after': entry.balanceAfter }),
      );
    });

  return credits;
}
