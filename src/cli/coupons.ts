import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { couponApplicationToJson, couponToJson } from '../api/routes/coupons';
import { page, PageQuerySchema } from '../api/pagination';
import { systemClock } from '../clock';
import { CouponService } from '../coupons/service';
import type { CouponApplication, StoredCoupon } from '../coupons/store';
import { CouponSchema } from '../domain/discounts';
import { CliError, exitCodes, parseInput, unwrapForCli, withDatabase, type CliContext } from './context';
import { emit, pageText, table } from './output';

const discountText = (c: StoredCoupon) =>
  c.discount.type === 'percentage' ? `${c.discount.percent_off}%` : `${c.discount.amount_off} ${c.discount.currency}`;
const durationText = (c: StoredCoupon) => (c.duration.kind === 'repeating' ? `${c.duration.periods} periods` : c.duration.kind);
const couponRow = (c: StoredCoupon) => [c.code, c.name, discountText(c), durationText(c), c.meters?.join(', ') ?? 'all charges'];
const couponHead = ['code', 'name', 'off', 'duration', 'on'];
const applicationRow = (a: CouponApplication) => [
  a.id,
  a.coupon.code,
  a.subscriptionId ?? 'all',
  String(a.periodsUsed),
  durationText(a.coupon),
];

async function readJson(file: string): Promise<unknown> {
  const text = await readFile(file, 'utf8').catch((err: unknown) => {
    throw new CliError(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`, exitCodes.cannotRun);
  });
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliError(`${file} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`, exitCodes.cannotRun);
  }
}

export function couponsCommand(ctx: CliContext): Command {
  const coupons = new Command('coupons').description('coupons and their application to customers (acts as "cli" in the audit log)');
  const service = <T>(work: (s: CouponService) => Promise<T>) => withDatabase(ctx, (pool) => work(new CouponService(pool, systemClock)));

  coupons
    .command('create')
    .description("create a coupon from a JSON file in the API's coupon format; repeating it with the same terms is safe")
    .requiredOption('--file <coupon.json>', 'the coupon: code, name, discount, duration, meters')
    .action(async (opts: { file: string }, command: Command) => {
      const input = parseInput(CouponSchema, await readJson(opts.file), 'coupon');
      const result = await service((s) => s.create('cli', input));
      const { created, coupon } = unwrapForCli(result);
      emit(
        ctx,
        command,
        { ...couponToJson(coupon), created },
        () => `${created ? 'created' : 'already exists'}\n${table(couponHead, [couponRow(coupon)])}`,
      );
    });

  coupons
    .command('list')
    .description('list coupons by code')
    .option('--limit <n>', 'page size (at most 500)', '50')
    .option('--after <code>', "start after this code (the previous page's cursor)")
    .action(async (opts: { limit: string; after?: string }, command: Command) => {
      const query = parseInput(PageQuerySchema, opts, 'options');
      const result = page(await service((s) => s.list(query.limit + 1, query.after)), query.limit, (c) => c.code);
      emit(ctx, command, { data: result.data.map(couponToJson), next_cursor: result.next_cursor }, () =>
        pageText(table(couponHead, result.data.map(couponRow)), result.data.length, result.next_cursor),
      );
    });

  coupons
    .command('apply')
    .description('apply a coupon to a customer (or one of its subscriptions); applying it again is safe')
    .argument('<customer>', 'external id of the customer')
    .argument('<coupon>', 'coupon code')
    .option('--subscription <id>', 'only this subscription of the customer')
    .action(async (customer: string, code: string, opts: { subscription?: string }, command: Command) => {
      const { created, application } = unwrapForCli(
        await service((s) => s.apply('cli', customer, { coupon: code, subscriptionId: opts.subscription ?? null })),
      );
      emit(
        ctx,
        command,
        { ...couponApplicationToJson(application, customer), created },
        () =>
          `${created ? 'applied' : 'already applied'}\n${table(['application', 'coupon', 'subscription', 'periods used', 'duration'], [applicationRow(application)])}`,
      );
    });

  coupons
    .command('applications')
    .description("a customer's coupon applications with the periods each has used")
    .argument('<customer>', 'external id of the customer')
    .action(async (customer: string, _opts: unknown, command: Command) => {
      const applications = unwrapForCli(await service((s) => s.applications('cli', customer)));
      emit(ctx, command, { data: applications.map((a) => couponApplicationToJson(a, customer)) }, () =>
        table(['application', 'coupon', 'subscription', 'periods used', 'duration'], applications.map(applicationRow)),
      );
    });

  return coupons;
}
