import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { page, PageQuerySchema } from '../api/pagination';
import { planToJson, termsOf } from '../api/routes/plans';
import { createPlan, getPlan, listPlans, type StoredPlan } from '../billing/plan-store';
import { canonicalJson } from '../domain/metering/canonical-json';
import { planSchema, type Plan } from '../domain/plan';
import { allMeters } from '../meters/store';
import { CliError, exitCodes, parseInput, withDatabase, type CliContext } from './context';
import { emit, pageText, record, table } from './output';

const interval = (plan: Plan) => (plan.interval.kind === 'duration' ? plan.interval.iso : 'calendar month');
const toRow = (plan: StoredPlan) => [
  plan.id,
  plan.name,
  plan.currency,
  interval(plan),
  plan.base_fee,
  plan.charges.map((c) => `${c.meter} (${c.model})`).join(', '),
];
const head = ['code', 'name', 'currency', 'interval', 'base fee', 'charges'];

/** The plan file as JSON; its terms are checked by the plan schema against the defined meters. */
async function readPlanFile(file: string): Promise<unknown> {
  const text = await readFile(file, 'utf8').catch((err: unknown) => {
    throw new CliError(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`, exitCodes.cannotRun);
  });
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliError(`${file} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`, exitCodes.cannotRun);
  }
}

function describePlan(plan: StoredPlan): string {
  const terms = record({
    code: plan.id,
    name: plan.name,
    currency: plan.currency,
    interval: interval(plan),
    'base fee': plan.base_fee,
    'minimum commitment': plan.minimum_commitment,
    rounding: plan.rounding,
    created: plan.createdAt.toISOString(),
  });
  const charges = table(
    ['meter', 'model', 'terms'],
    plan.charges.map(({ meter, model, ...rest }) => [meter, model, JSON.stringify(rest)]),
  );
  const limits = plan.limits.length
    ? `\nlimits\n${table(
        ['meter', 'terms'],
        plan.limits.map(({ meter, ...rest }) => [meter, JSON.stringify(rest)]),
      )}`
    : '';
  return `${terms}\ncharges\n${charges}${limits}`;
}

export function plansCommand(ctx: CliContext): Command {
  const plans = new Command('plans').description(
    'plans, directly in the database (immutable once created; acts as "cli" in the audit log)',
  );

  plans
    .command('create')
    .description("create a plan from a JSON file in the API's plan format; repeating it with the same terms is safe")
    .requiredOption('--file <plan.json>', 'the plan: id, name, currency, interval, charges, limits, …')
    .action(async (opts: { file: string }, command: Command) => {
      const raw = await readPlanFile(opts.file);
      const { input, result } = await withDatabase(ctx, async (pool) => {
        const knownMeters = new Set((await allMeters(pool)).map((meter) => meter.code));
        const input = parseInput(planSchema({ knownMeters }), raw, 'plan');
        return { input, result: await createPlan(pool, input, 'cli') };
      });
      // jsonb reorders object keys, so the terms are compared in canonical form.
      if (!result.created && canonicalJson(termsOf(result.existing)) !== canonicalJson(input)) {
        throw new CliError(
          `plan "${result.existing.id}" already exists with other terms; plans never change: create the new terms under a new code`,
        );
      }
      const plan = result.created ? result.plan : result.existing;
      emit(
        ctx,
        command,
        { ...planToJson(plan), created: result.created },
        () => `${result.created ? 'created' : 'already exists'}\n${describePlan(plan)}`,
      );
    });

  plans
    .command('list')
    .description('list plans by code')
    .option('--limit <n>', 'page size (at most 500)', '50')
    .option('--after <code>', "start after this code (the previous page's cursor)")
    .action(async (opts: { limit: string; after?: string }, command: Command) => {
      const query = parseInput(PageQuerySchema, opts, 'options');
      const rows = await withDatabase(ctx, (pool) => listPlans(pool, query.limit + 1, query.after));
      const result = page(rows, query.limit, (plan) => plan.id);
      emit(ctx, command, { data: result.data.map(planToJson), next_cursor: result.next_cursor }, () =>
        pageText(table(head, result.data.map(toRow)), result.data.length, result.next_cursor),
      );
    });

  plans
    .command('show')
    .description('show a plan with its charges and limits')
    .argument('<code>')
    .action(async (code: string, _opts: unknown, command: Command) => {
      const plan = await withDatabase(ctx, (pool) => getPlan(pool, code));
      if (!plan) throw new CliError(`no plan "${code}"`);
      emit(ctx, command, planToJson(plan), () => describePlan(plan));
    });

  return plans;
}
