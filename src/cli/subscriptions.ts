import { Command } from 'commander';
import { z } from 'zod';
import { SubscriptionInputSchema, subscriptionToJson } from '../api/routes/subscriptions';
import { getPlan } from '../billing/plan-store';
import { PlanCodeSchema } from '../domain/plan';
import type { SubscriptionLifecycle } from '../billing/subscription-lifecycle';
import { cancelSubscription, changePlan, createSubscription, getSubscription, type Subscription } from '../billing/subscription-store';
import { systemClock } from '../clock';
import { getCustomer } from '../customers/store';
import { CliError, exitCodes, parseInput, withDatabase, type CliContext } from './context';
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
    created: s.createdAt.toISOString(),
  });
}

const workflowStep = { started: 'started', canceled: 'told of the cancellation', planChanged: 'moved to the new plan' } as const;
type Step = keyof typeof workflowStep;

/** How long a workflow step may take: a change of plan waits for a worker to apply it. */
const STEP_DEADLINE_MS = 30_000;

/**
 * Runs the billing-workflow step after the database commit, as the API does. The change stays
 * saved when Temporal fails; every step is idempotent, so repeating the same command converges.
 */
async function afterCommit(ctx: CliContext, subscription: Subscription, step: Step): Promise<void> {
  // Loaded here only: the Temporal client and the workflow definitions add half a second to every other command's start.
  const [{ Client, Connection }, { temporalSubscriptionLifecycle }] = await Promise.all([
    import('@temporalio/client'),
    import('../billing/temporal-subscription-lifecycle'),
  ]);
  const address = ctx.config.TEMPORAL_ADDRESS ?? `127.0.0.1:${ctx.config.TEMPORAL_PORT}`;
  const failed = (why: string, exitCode: 1 | 2) =>
    new CliError(
      `subscription ${subscription.id} is saved, but its billing workflow could not be ${workflowStep[step]}: ${why}; retry the same command`,
      exitCode,
    );
  const connection = await Connection.connect({ address, connectTimeout: '5s' }).catch((err: unknown) => {
    throw failed(
      `cannot reach Temporal at ${address} (start it with \`npm start\`, or set TEMPORAL_ADDRESS): ${err instanceof Error ? err.message : String(err)}`,
      exitCodes.cannotRun,
    );
  });
  try {
    const client = new Client({ connection, namespace: ctx.config.TEMPORAL_NAMESPACE });
    const lifecycle: SubscriptionLifecycle = temporalSubscriptionLifecycle({
      client,
      taskQueue: ctx.config.TEMPORAL_TASK_QUEUE,
      allowedLatenessMs: ctx.config.ALLOWED_LATENESS_SECONDS * 1000,
      dunning: ctx.config.DUNNING_SCHEDULE,
    });
    await client
      .withDeadline(Date.now() + STEP_DEADLINE_MS, () => lifecycle[step](subscription))
      .catch((err: unknown) => {
        throw failed(err instanceof Error ? err.message : String(err), exitCodes.failed);
      });
  } finally {
    await connection.close();
  }
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
    .action(async (opts: { customer: string; plan: string; start?: string }, command: Command) => {
      const input = parseInput(SubscriptionInputSchema, opts, 'options');
      const result = await withDatabase(ctx, async (pool) => {
        const [customer, plan] = await Promise.all([getCustomer(pool, input.customer), getPlan(pool, input.plan)]);
        if (!customer) throw new CliError(`no customer "${input.customer}"`);
        if (!plan) throw new CliError(`no plan "${input.plan}"`);
        if (plan.currency !== customer.currency) {
          throw new CliError(`customer "${input.customer}" is billed in ${customer.currency}, plan "${plan.id}" in ${plan.currency}`);
        }
        const anchor = input.start === undefined ? systemClock.now() : new Date(input.start);
        return { anchor, saved: await createSubscription(pool, { customerId: customer.id, planCode: plan.id, anchor, actor: 'cli' }) };
      });
      const { saved, anchor } = result;
      const subscription = saved.created ? saved.subscription : saved.existing;
      // The same request again (same plan, and the same start or none) is a retry, not a second subscription.
      if (
        !saved.created &&
        (subscription.plan.id !== input.plan || (input.start !== undefined && subscription.anchor.getTime() !== anchor.getTime()))
      ) {
        throw new CliError(
          `customer "${input.customer}" already has an active subscription (${subscription.id}); cancel it or change its plan`,
        );
      }
      await afterCommit(ctx, subscription, 'started');
      emit(
        ctx,
        command,
        { ...toJson(subscription), created: saved.created },
        () => `${saved.created ? 'subscribed' : 'already subscribed'}\n${describe(subscription)}`,
      );
    });

  subscriptions
    .command('show')
    .description('show a subscription')
    .argument('<id>')
    .action(async (id: string, _opts: unknown, command: Command) => {
      parseInput(IdSchema, id, 'id');
      const subscription = await withDatabase(ctx, (pool) => getSubscription(pool, id));
      if (!subscription) throw new CliError(`no subscription ${id}`);
      emit(ctx, command, toJson(subscription), () => describe(subscription));
    });

  subscriptions
    .command('cancel')
    .description('cancel now; the billing workflow invoices the final period; repeating it is safe')
    .argument('<id>')
    .action(async (id: string, _opts: unknown, command: Command) => {
      parseInput(IdSchema, id, 'id');
      const result = await withDatabase(ctx, (pool) => cancelSubscription(pool, id, systemClock.now(), 'cli'));
      if (!result) throw new CliError(`no subscription ${id}`);
      // Also when it was already canceled: a retry after a failed step converges.
      await afterCommit(ctx, result.subscription, 'canceled');
      emit(
        ctx,
        command,
        toJson(result.subscription),
        () => `${result.canceled ? 'canceled' : 'already canceled'}\n${describe(result.subscription)}`,
      );
    });

  subscriptions
    .command('change-plan')
    .description('move to another plan at once (no proration); repeating it is safe')
    .argument('<id>')
    .requiredOption('--plan <code>', 'the plan to move to')
    .action(async (id: string, opts: { plan: string }, command: Command) => {
      parseInput(IdSchema, id, 'id');
      const plan = parseInput(PlanCodeSchema, opts.plan, '--plan');
      const result = await withDatabase(ctx, (pool) => changePlan(pool, id, plan, 'cli', systemClock.now()));
      if (result.outcome === 'refused') {
        throw new CliError(
          {
            subscription_not_found: `no subscription ${id}`,
            subscription_canceled: `subscription ${id} is canceled; subscribe the customer again instead`,
            unknown_plan: `no plan "${plan}"`,
            currency_mismatch: `plan "${plan}" is in another currency than subscription ${id}`,
          }[result.reason],
        );
      }
      // Also when unchanged: a retry after a failed step converges.
      await afterCommit(ctx, result.subscription, 'planChanged');
      emit(
        ctx,
        command,
        toJson(result.subscription),
        () => `${result.outcome === 'changed' ? 'plan changed' : 'already on this plan'}\n${describe(result.subscription)}`,
      );
    });

  return subscriptions;
}
