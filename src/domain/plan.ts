import { z } from 'zod';
import { settlements } from './credit-drawdown';
import { storable } from './edge-schemas';
import { BillingIntervalSchema } from './periods-schema';
import { pricePlanSchema } from './pricing';
import { MeterLimitsSchema } from './quota-policy-schema';

/*
 * A plan: the tariff engine's price plan (so a plan is priced as is, and its priced lines carry
 * its code as plan_id), plus a name, the billing interval and the limits per meter. Pure, so
 * the API, activities and workflows all read plans with the same rules.
 */

/** Plan codes are permanent references (subscriptions, invoices, workflow inputs): short and URL-safe. */
export const PlanCodeSchema = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
  .regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, 'must be 1 to 64 characters of a-z, 0-9, "_", "." or "-", starting with a letter or digit')
  .meta({ example: 'pro-2026-03' });

const planFields = {
  id: PlanCodeSchema.meta({
    description: 'The plan code. Permanent: a plan never changes its terms; a price change is a new plan with a new code.',
  }),
  name: storable(z.string({ error: 'is required' }).min(1, 'must not be empty').max(256, 'must be at most 256 characters')),
  interval: BillingIntervalSchema,
  limits: MeterLimitsSchema.default([]).meta({ description: 'Soft thresholds and hard limits, at most one entry per meter.' }),
  settlement: z
    .enum(settlements, { error: `must be one of ${settlements.join(', ')}` })
    .optional()
    .meta({
      description:
        'How prepaid credits settle its invoices: credit_then_invoice (the default when absent: credits first, the rest invoiced) ' +
        'or credit_only (service stops when the balance is spent; a remainder is invoiced as overage and flagged).',
    }),
};

/**
 * With `knownMeters` (the meters the account has defined), every charge and every limit must be
 * on a known meter; a limit may then sit on a meter the plan does not charge for (a free but
 * capped meter). Without it, the only evidence that a limit's meter exists is a charge on it.
 */
function buildPlanSchema(knownMeters: ReadonlySet<string> | undefined) {
  return pricePlanSchema(knownMeters ? { knownMeters } : {})
    .safeExtend(planFields)
    .superRefine((plan, ctx) => {
      // Refinements also run after field failures, so the shapes are re-checked before use.
      if (!Array.isArray(plan.limits) || !Array.isArray(plan.charges)) return;
      const charged = new Set(plan.charges.map((charge) => charge?.meter));
      plan.limits.forEach((limit, i) => {
        const meter = limit?.meter;
        if (typeof meter !== 'string' || charged.has(meter) || knownMeters?.has(meter)) return;
        const message = knownMeters
          ? `unknown meter ${JSON.stringify(meter)}: no meter with this name is defined`
          : `meter ${JSON.stringify(meter)} has no charge in this plan, so nothing shows it exists; charge for it, or validate against the defined meters`;
        ctx.addIssue({ code: 'custom', path: ['limits', i, 'meter'], message });
      });
    });
}

export const PlanSchema = buildPlanSchema(undefined).meta({
  id: 'Plan',
  description: 'Pricing, billing interval and limits. Immutable once created: change prices by creating a plan with a new code.',
});
export type Plan = z.infer<typeof PlanSchema>;
export type PlanInput = z.input<typeof PlanSchema>;

/** The plan schema checking charges' and limits' meters against the meters the account has defined. */
export function planSchema(options: { knownMeters?: ReadonlySet<string> } = {}) {
  return options.knownMeters ? buildPlanSchema(options.knownMeters) : PlanSchema;
}
