import { Command } from 'commander';
import { z } from 'zod';
import type { Pool } from '../db/pool';
import { SubscriptionInputSchema, subscriptionToJson } from '../api/routes/subscriptions';
import { systemClock } from '../clock';
import { CustomerService } from '../customers/service';
import { PlanCodeSchema } from '../domain/plan';
import { SpendThresholdsSchema, type SpendThresholds } from '../domain/spend-thresholds-schema';
import type { Result } from '../domain/result';
import { SpendCapSchema, type SpendCap } from '../domain/spend-limit-schema';
import { changeEffects, isLifecycleStepFailed, SubscriptionService } from '../subscriptions/service';
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
    'billing anchor': s.billingAnchor.toISOString(),
    'current period': period && `${period.start} – ${period.end}`,
    'cancel at': s.cancelAt?.toISOString(),
    'pending change': s.pendingChange && `to ${s.pendingChange.toPlan} at ${s.pendingChange.effectiveAt.toISOString()}`,
    'spend cap':
      s.spendCap && `${s.spendCap.amount} ${s.plan.currency}${s.spendCap.grace_period ? `, grace ${s.spendCap.grace_period}` : ''}`,
    created: s.createdAt.toISOString(),
    'spend thresholds': describeThresholds(s.spendThresholds),
  });
}

function describeThresholds(t: SpendThresholds): string {
  const parts = [...(t.amounts.length > 0 ? [t.amounts.join(', ')] : []), ...(t.every !== null ? [`every ${t.every}`] : [])];
  return parts.length > 0 ? parts.join('; ') : 'none';
}

/** Repeatable options collect their values. */
const collect = (value: string, previous: string[] = []) => [...previous, value];

/** The thresholds the options name, or undefined when they name none. */
function thresholdOptions(opts: { spendThreshold?: string[]; spendEvery?: string }): unknown {
  if (opts.spendThreshold === undefined && opts.spendEvery === undefined) return undefined;
  return { amounts: opts.spendThreshold ?? [], every: opts.spendEvery ?? null };
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
    .option('--start <instant>', 'RFC 3339 subscription start, when billing begins (default now)')
    .option('--billing-anchor <instant>', 'RFC 3339 instant every period boundary is derived from (default the start)')
    .option('--spend-threshold <amount>', 'progressive billing: an interim invoice when priced usage reaches it (repeatable)', collect)
    .option('--spend-every <amount>', 'progressive billing: an interim invoice at every multiple of it')
    .option('--spend-cap <amount>', "what one period of usage may cost, in the plan's currency (default: no cap)")
    .option('--spend-cap-grace <duration>', 'ISO 8601 duration usage is still accepted once the cap is reached (default none)')
    .action(
      async (
        opts: {
          customer: string;
          plan: string;
          start?: string;
          billingAnchor?: string;
          spendThreshold?: string[];
          spendEvery?: string;
          spendCap?: string;
          spendCapGrace?: string;
        },
        command: Command,
      ) => {
        const thresholds = thresholdOptions(opts);
        const spendCap = spendCapOption(opts);
        const input = parseInput(
          SubscriptionInputSchema,
          {
            customer: opts.customer,
            plan: opts.plan,
            ...(opts.start === undefined ? {} : { start: opts.start }),
            ...(opts.billingAnchor === undefined ? {} : { billing_anchor: opts.billingAnchor }),
            ...(thresholds === undefined ? {} : { spend_thresholds: thresholds }),
          },
          'options',
        );
        const start = input.start === undefined ? undefined : new Date(input.start);
        const result = await withDatabase(ctx, (pool) =>
          serviceOn(ctx, pool).subscribe('cli', {
            customer: input.customer,
            plan: input.plan,
            start,
            ...(input.billing_anchor === undefined ? {} : { billingAnchor: new Date(input.billing_anchor) }),
            ...(input.spend_thresholds ? { spendThresholds: input.spend_thresholds } : {}),
            ...(spendCap ? { spendCap } : {}),
          }),
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
    .description(
      'move to another plan: an upgrade at once, a downgrade at the period end unless --effective says; the period is ' +
        'split at the change and fixed fees prorated; repeating it is safe',
    )
    .argument('<id>')
    .requiredOption('--plan <code>', 'the plan to move to')
    .option('--effective <when>', `when the change takes effect: ${changeEffects.join(' or ')} (default: by direction)`)
    .action(async (id: string, opts: { plan: string; effective?: string }, command: Command) => {
      parseInput(IdSchema, id, 'id');
      const plan = parseInput(PlanCodeSchema, opts.plan, '--plan');
      const effective = opts.effective === undefined ? undefined : parseInput(z.enum(changeEffects), opts.effective, '--effective');
      const { changed, subscription, direction, effectiveAt } = settled(
        await withDatabase(ctx, (pool) => serviceOn(ctx, pool).changePlan('cli', id, plan, effective)),
      );
      const what = changed ? `${direction} to ${plan}, effective ${effectiveAt.toISOString()}` : 'already on this plan or scheduled for it';
      emit(ctx, command, toJson(subscription), () => `${what}\n${describe(subscription)}`);
    });

  subscriptions
    .command('spend-thresholds')
    .description('replace the spend thresholds (progressive billing); without options, turns them off; repeating it is safe')
    .argument('<id>')
    .option('--spend-threshold <amount>', 'an interim invoice when the period’s priced usage reaches it (repeatable)', collect)
    .option('--spend-every <amount>', 'an interim invoice at every multiple of it')
    .action(async (id: string, opts: { spendThreshold?: string[]; spendEvery?: string }, command: Command) => {
      parseInput(IdSchema, id, 'id');
      const thresholds = parseInput(SpendThresholdsSchema, thresholdOptions(opts) ?? {}, 'options');
      const { changed, subscription } = settled(
        await withDatabase(ctx, (pool) => serviceOn(ctx, pool).changeSpendThresholds('cli', id, thresholds)),
      );
      emit(ctx, command, toJson(subscription), () => `${changed ? 'spend thresholds set' : 'already set'}\n${describe(subscription)}`);
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
