import { Command } from 'commander';
import { page, PageQuerySchema } from '../api/pagination';
import { CustomerInputSchema, customerToJson } from '../api/routes/customers';
import { CustomerService } from '../customers/service';
import type { Customer } from '../customers/store';
import { CliError, parseInput, unwrapForCli, withDatabase, type CliContext } from './context';
import { emit, pageText, record, table } from './output';

const toRow = (c: Customer) => [c.externalId, c.name, c.currency, c.createdAt.toISOString()];
const head = ['external id', 'name', 'currency', 'created'];

export function customersCommand(ctx: CliContext): Command {
  const customers = new Command('customers').description('customers, directly in the database');

  customers
    .command('create')
    .description('create a customer; repeating it with the same attributes is safe')
    .argument('<externalId>', 'your id for the customer')
    .requiredOption('--name <name>', 'display name')
    .requiredOption('--currency <code>', 'ISO 4217 billing currency, e.g. USD')
    .action(async (externalId: string, opts: { name: string; currency: string }, command: Command) => {
      const input = parseInput(CustomerInputSchema, { external_id: externalId, ...opts }, 'customer');
      const result = await withDatabase(ctx, (pool) => new CustomerService(pool).create('cli', input));
      if (!result.ok) {
        const { existing } = result.details;
        throw new CliError(
          `customer "${externalId}" already exists with other attributes (name "${existing.name}", currency ${existing.currency})`,
        );
      }
      const { created, customer } = result.value;
      emit(
        ctx,
        command,
        { ...customerToJson(customer), created },
        () => `${created ? 'created' : 'already exists'}\n${table(head, [toRow(customer)])}`,
      );
    });

  customers
    .command('list')
    .description('list customers by external id')
    .option('--limit <n>', 'page size (at most 500)', '50')
    .option('--after <externalId>', "start after this external id (the previous page's cursor)")
    .action(async (opts: { limit: string; after?: string }, command: Command) => {
      const query = parseInput(PageQuerySchema, opts, 'options');
      const rows = await withDatabase(ctx, (pool) => new CustomerService(pool).list(query.limit + 1, query.after));
      const result = page(rows, query.limit, (c) => c.externalId);
      emit(ctx, command, { data: result.data.map(customerToJson), next_cursor: result.next_cursor }, () =>
        pageText(table(head, result.data.map(toRow)), result.data.length, result.next_cursor),
      );
    });

  customers
    .command('show')
    .description('show one customer')
    .argument('<externalId>')
    .action(async (externalId: string, _opts: unknown, command: Command) => {
      const customer = unwrapForCli(await withDatabase(ctx, (pool) => new CustomerService(pool).get('cli', externalId)));
      emit(ctx, command, customerToJson(customer), () =>
        record({
          'external id': customer.externalId,
          name: customer.name,
          currency: customer.currency,
          id: customer.id,
          created: customer.createdAt.toISOString(),
        }),
      );
    });

  return customers;
}
