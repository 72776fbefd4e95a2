import { Command } from 'commander';
import { z } from 'zod';
import type { Pool } from '../db/pool';
import { SubscriptionInputSchema, subscriptionToJson } from '../api/routes/subscriptions';
import { systemClock } from '../clock';
import { CustomerService } from '../customers/service';
import { PlanCodeSchema } from '../domain/plan';
import type { Result } from '../domain/result';
import { SpendCapSchema, type SpendCap } from '../domain/spend-limit';
import { isLifecycleStepFailed, SubscriptionService } from '../subscriptions/service';
import type { Subscription } from '../subscriptions/store';
import { cliSubscriptionLifecycle, stepFailedError } from './billing-workflows';
import { CliError, exitCodes, parseInput, unwrapForCli, withDatabase, type CliContext } from './context';
import { emit, record } from './output';

const IdSchema = z.uuid({ error: 'must be a subscription id (a UUID)' });

const toJson = (s: Subscription) => subscriptionToJson(s, systemClock.now());

function describe(s: Subscription): string {
  const period = toJson(s).current_period;
  return record({
    id: s.id,
    customer: s.customer.externalId,
    plan: s.plan.id,
    status: s.status,
    anchor: s.anchor.toISOString(),
    'current period': period && `${period.start} – ${period.end}`,
    'cancel at': s.cancelAt?.toISOString(),
    'spend cap':
      s.spendCap && `${s.spendCap.amount} ${s.plan.currency}${s.spendCap.grace_period ? `, grace ${s.spendCap.grace_period}` : ''}`,
    created: s.createdAt.toISOString(),
  });
}

/** A spend cap from `--spend-cap <amount>` and `--spend-cap-grace <duration>`; undefined without an amount. */
function spendCapOption(opts: { spendCap?: string; spendCapGrace?: string }): SpendCap | undefined {
  if (opts.spendCap === undefined) {
    if (opts.spendCapGrace !== undefined) throw new CliError('--spend-cap-grace needs --spend-cap', exitCodes.cannotRun);
    return undefined;
  }
  const cap = { amount: opts.spendCap, ...(opts.spendCapGrace === undefined ? {} : { grace_period: opts.spendCapGrace }) };
  return parseInput(SpendCapSchema, cap, 'spend cap');
}

/** The service on this pool; its workflow steps run on the Temporal server the environment names. */
const serviceOn = (ctx: CliContext, pool: Pool) =>
  new SubscriptionService({ pool, clock: systemClock, customers: new CustomerService(pool), lifecycle: cliSubscriptionLifecycle(ctx) });

/** The result's value; a workflow step that failed after the commit says what to retry. */
function settled<T>(result: Result<T>): T {
  if (isLifecycleStepFailed(result)) throw stepFailedError(result);
  return unwrapForCli(result);
}

export function subscriptionsCommand(ctx: CliContext): Command {
  const subscriptions = new Command('subscriptions').description(
    'subscriptions, directly in the database, and their billing workflows on Temporal (acts as "cli" in the audit log)',
  );

  subscriptions
    .command('create')
    .description('subscribe a customer to a plan and start its billing workflow; repeating it is safe')
    .requiredOption('--customer <externalId>', 'the customer')
    .requiredOption('--plan <code>', 'the plan')
    .option('--start <instant>', 'RFC 3339 subscription start, which anchors every period (default now)')
    .option('--spend-cap <amount>', "what one period of usage may cost, in the plan's currency (default: no cap)")
    .option('--spend-cap-grace <duration>', 'ISO 8601 duration usage is still accepted once the cap is reached (default none)')
    .action(
      async (opts: { customer: string; plan: string; start?: string; spendCap?: string; spendCapGrace?: string }, command: Command) => {
        const spendCap = spendCapOption(opts);
        const input = parseInput(SubscriptionInputSchema, { customer: opts.customer, plan: opts.plan, start: opts.start }, 'options');
        const start = input.start === undefined ? undefined : new Date(input.start);
        const result = await withDatabase(ctx, (pool) =>
          serviceOn(ctx, pool).subscribe('cli', { customer: input.customer, plan: input.plan, start, ...(spendCap ? { spendCap } : {}) }),
        );
        if (!result.ok && result.reason === 'subscription_exists') {
          throw new CliError(
            `customer "${input.customer}" already has an active subscription (${result.details.existing.id}); cancel it or change its plan`,
          );
        }
        const { created, subscription } = settled(result);
        emit(
          ctx,
          command,
          { ...toJson(subscription), created },
          () => `${created ? 'subscribed' : 'already subscribed'}\n${describe(subscription)}`,
        );
      },
    );

  subscriptions
    .command('show')
    .description('show a subscription')
    .argument('<id>')
    .action(async (id: string, _opts: unknown, command: Command) => {
      parseInput(IdSchema, id, 'id');
      const subscription = unwrapForCli(await withDatabase(ctx, (pool) => serviceOn(ctx, pool).get('cli', id)));
      emit(ctx, command, toJson(subscription), () => describe(subscription));
    });

  subscriptions
    .command('cancel')
    .description('cancel now; the billing workflow invoices the final period; repeating it is safe')
    .argument('<id>')
    .action(async (id: string, _opts: unknown, command: Command) => {
      parseInput(IdSchema, id, 'id');
      const { canceled, subscription } = settled(await withDatabase(ctx, (pool) => serviceOn(ctx, pool).cancel('cli', id)));
      emit(ctx, command, toJson(subscription), () => `${canceled ? 'canceled' : 'already canceled'}\n${describe(subscription)}`);
    });

  subscriptions
    .command('change-plan')
    .description('move to another plan at once (no proration); repeating it is safe')
    .argument('<id>')
    .requiredOption('--plan <code>', 'the plan to move to')
    .action(async (id: string, opts: { plan: string }, command: Command) => {
      parseInput(IdSchema, id, 'id');
      const plan = parseInput(PlanCodeSchema, opts.plan, '--plan');
      const { changed, subscription } = settled(await withDatabase(ctx, (pool) => serviceOn(ctx, pool).changePlan('cli', id, plan)));
      emit(ctx, command, toJson(subscription), () => `${changed ? 'plan changed' : 'already on this plan'}\n${describe(subscription)}`);
    });

  subscriptions
    .command('spend-cap')
    .description('set (--amount) or remove (--remove) the spend cap, effective at once for the period in progress; repeating it is safe')
    .argument('<id>')
    .option('--amount <amount>', "what one period of usage may cost, in the plan's currency")
    .option('--grace <duration>', 'ISO 8601 duration usage is still accepted once the cap is reached (default none)')
    .option('--remove', 'remove the cap')
    .action(async (id: string, opts: { amount?: string; grace?: string; remove?: boolean }, command: Command) => {
      parseInput(IdSchema, id, 'id');
      const remove = opts.remove === true;
      if (remove === (opts.amount !== undefined)) throw new CliError('give either --amount or --remove', exitCodes.cannotRun);
      if (remove && opts.grace !== undefined) throw new CliError('--grace applies only with --amount', exitCodes.cannotRun);
      const spendCap = remove ? null : spendCapOption({ spendCap: opts.amount, spendCapGrace: opts.grace })!;
      const { changed, subscription } = settled(await withDatabase(ctx, (pool) => serviceOn(ctx, pool).setSpendCap('cli', id, spendCap)));
      emit(
        ctx,
        command,
        toJson(subscription),
        () => `${changed ? 'spend cap changed' : 'spend cap already so'}\n${describe(subscription)}`,
      );
    });

  return subscriptions;
}
