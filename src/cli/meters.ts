import { Command } from 'commander';
import { page, PageQuerySchema } from '../api/pagination';
import { aggregations, MeterInputSchema } from '../domain/metering/meter';
import { MeterService } from '../meters/service';
import type { StoredMeter } from '../meters/store';
import { CliError, exitCodes, parseInput, unwrapForCli, withDatabase, type CliContext } from './context';
import { emit, pageText, table } from './output';
import { meterToJson } from '../api/routes/meters';

const toRow = (m: StoredMeter) => [
  m.code,
  m.name,
  m.eventType,
  m.aggregation,
  m.valueProperty,
  Object.keys(m.filter).length ? JSON.stringify(m.filter) : '',
];
const head = ['code', 'name', 'event type', 'aggregation', 'value property', 'filter'];

function parseFilter(text: string | undefined): unknown {
  if (text === undefined) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(`--filter must be a JSON object such as '{"region":"eu"}'; got ${text}`, exitCodes.cannotRun);
  }
}

export function metersCommand(ctx: CliContext): Command {
  const meters = new Command('meters').description('meters, directly in the database (one per event type)');

  meters
    .command('create')
    .description('create a meter; repeating it with the same definition is safe')
    .argument('<code>', 'permanent meter code, e.g. api_calls')
    .requiredOption('--name <name>', 'display name')
    .requiredOption('--event-type <type>', 'the event type it aggregates')
    .requiredOption('--aggregation <kind>', aggregations.join(', '))
    .option('--value-property <name>', 'the event property carrying the value (not for count)')
    .option('--filter <json>', 'equality match on event properties, as a JSON object')
    .action(
      async (
        code: string,
        opts: { name: string; eventType: string; aggregation: string; valueProperty?: string; filter?: string },
        command: Command,
      ) => {
        const input = parseInput(
          MeterInputSchema,
          {
            code,
            name: opts.name,
            event_type: opts.eventType,
            aggregation: opts.aggregation,
            ...(opts.valueProperty === undefined ? {} : { value_property: opts.valueProperty }),
            filter: parseFilter(opts.filter),
          },
          'meter',
        );
        const { created, meter } = unwrapForCli(await withDatabase(ctx, (pool) => new MeterService(pool).create('cli', input)));
        emit(
          ctx,
          command,
          { ...meterToJson(meter), created },
          () => `${created ? 'created' : 'already exists'}\n${table(head, [toRow(meter)])}`,
        );
      },
    );

  meters
    .command('list')
    .description('list meters by code')
    .option('--limit <n>', 'page size (at most 500)', '50')
    .option('--after <code>', "start after this code (the previous page's cursor)")
    .action(async (opts: { limit: string; after?: string }, command: Command) => {
      const query = parseInput(PageQuerySchema, opts, 'options');
      const rows = await withDatabase(ctx, (pool) => new MeterService(pool).list(query.limit + 1, query.after));
      const result = page(rows, query.limit, (m) => m.code);
      emit(ctx, command, { data: result.data.map(meterToJson), next_cursor: result.next_cursor }, () =>
        pageText(table(head, result.data.map(toRow)), result.data.length, result.next_cursor),
      );
    });

  return meters;
}
