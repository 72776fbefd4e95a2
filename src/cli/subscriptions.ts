import { Command } from 'commander';
import { z } from 'zod';
import type { Pool } from '../db/pool';
import { SubscriptionInputSchema, subscriptionToJson } from '../api/routes/subscriptions';
import { systemClock } from '../clock';
import { CustomerService } from '../customers/service';
import { PlanCodeSchema } from '../domain/plan';
import { SpendThresholdsSchema, type SpendThresholds } from '../domain/spend-thresholds';
import type { Result } from '../domain/result';
import { changeEffects, isLifecycleStepFailed, SubscriptionService } from '../subscriptions/service';
import type { Subscription } from '../subscriptions/store';
import { cliSubscriptionLifecycle, stepFailedError } from './billing-workflows';
import { CliError, parseInput, unwrapForCli, withDatabase, type CliContext } from './context';
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
    'pending change': s.pendingChange && `to ${s.pendingChange.toPlan} at ${s.pendingChange.effectiveAt.toISOString()}`,
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
    .option('--spend-threshold <amount>', 'progressive billing: an interim invoice when priced usage reaches it (repeatable)', collect)
    .option('--spend-every <amount>', 'progressive billing: an interim invoice at every multiple of it')
    .action(
      async (
        opts: { customer: string; plan: string; start?: string; spendThreshold?: string[]; spendEvery?: string },
        command: Command,
      ) => {
        const thresholds = thresholdOptions(opts);
        const input = parseInput(
          SubscriptionInputSchema,
          {
            customer: opts.customer,
            plan: opts.plan,
            ...(opts.start === undefined ? {} : { start: opts.start }),
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
            ...(input.spend_thresholds ? { spendThresholds: input.spend_thresholds } : {}),
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

  return subscriptions;
}
