import { Command } from 'commander';
import { taxRateToJson } from '../api/routes/tax-rates';
import { systemClock } from '../clock';
import { TaxRateSchema } from '../domain/taxes';
import { TaxRateService } from '../taxes/service';
import type { StoredTaxRate } from '../taxes/store';
import { parseInput, unwrapForCli, withDatabase, type CliContext } from './context';
import { emit, table } from './output';

const head = ['code', 'name', 'percentage', 'inclusive', 'meter', 'since'];
const row = (r: StoredTaxRate) => [
  r.code,
  r.name,
  `${r.percentage}%`,
  r.inclusive ? 'yes' : 'no',
  r.meter ?? 'all',
  r.createdAt.toISOString(),
];

export function taxRatesCommand(ctx: CliContext): Command {
  const rates = new Command('tax-rates').description('customers\' tax rates (acts as "cli" in the audit log)');
  const service = <T>(work: (s: TaxRateService) => Promise<T>) => withDatabase(ctx, (pool) => work(new TaxRateService(pool, systemClock)));

  rates
    .command('add')
    .description('add a tax rate to a customer; repeating it with the same terms is safe')
    .argument('<customer>', 'external id of the customer')
    .requiredOption('--code <code>', 'short code, e.g. vat')
    .requiredOption('--name <name>', 'as the invoice shows it, e.g. "VAT 20%"')
    .requiredOption('--percentage <percent>', 'e.g. 20 or 8.875')
    .option('--inclusive', 'prices already contain this tax')
    .option('--meter <meter>', "only this meter's usage")
    .option('--base-fee', 'only the base fee and the minimum-commitment true-up')
    .action(
      async (
        customer: string,
        opts: { code: string; name: string; percentage: string; inclusive?: boolean; meter?: string; baseFee?: boolean },
        command: Command,
      ) => {
        const input = parseInput(
          TaxRateSchema,
          {
            code: opts.code,
            name: opts.name,
            percentage: opts.percentage,
            inclusive: opts.inclusive ?? false,
            meter: opts.meter ?? null,
            base_fee: opts.baseFee ?? false,
          },
          'options',
        );
        const { created, rate } = unwrapForCli(await service((s) => s.create('cli', customer, input)));
        emit(
          ctx,
          command,
          { ...taxRateToJson(rate, customer), created },
          () => `${created ? 'added' : 'already active'}\n${table(head, [row(rate)])}`,
        );
      },
    );

  rates
    .command('list')
    .description("a customer's active tax rates")
    .argument('<customer>', 'external id of the customer')
    .action(async (customer: string, _opts: unknown, command: Command) => {
      const list = unwrapForCli(await service((s) => s.list('cli', customer)));
      emit(ctx, command, { data: list.map((r) => taxRateToJson(r, customer)) }, () => table(head, list.map(row)));
    });

  rates
    .command('archive')
    .description('archive a tax rate: invoices drafted from now on no longer apply it')
    .argument('<customer>', 'external id of the customer')
    .argument('<code>', 'the rate code')
    .action(async (customer: string, code: string, _opts: unknown, command: Command) => {
      const rate = unwrapForCli(await service((s) => s.archive('cli', customer, code)));
      emit(ctx, command, taxRateToJson(rate, customer), () => `archived\n${table(head, [row(rate)])}`);
    });

  return rates;
}
