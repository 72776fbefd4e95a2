import type { Pool } from '../db/pool';
import { canonicalJson } from '../domain/metering/canonical-json';
import { planSchema, type Plan } from '../domain/plan';
import { ok, refuse, type Ok, type Refusal, type Result } from '../domain/result';
import { auditActorOf, type Actor } from '../keys/principal';
import { allMeters } from '../meters/store';
import { createPlan, getPlan, listPlans, planTerms, type StoredPlan } from './store';

/** The code is taken by other terms; `existing` is the stored plan, for adapters that may show it. */
export interface PlanExists extends Refusal<'plan_exists'> {
  details: { existing: StoredPlan };
}

/** The plan catalog every customer shares: plans never change once created, so every actor sees all of them. */
export class PlanService {
  constructor(private readonly pool: Pool) {}

  /** The plan schema against the meters defined now: every charge and limit must name one. */
  async inputSchema(): Promise<ReturnType<typeof planSchema>> {
    return planSchema({ knownMeters: new Set((await allMeters(this.pool)).map((meter) => meter.code)) });
  }

  /** Creates the plan; the same terms again return it (created: false); other terms under its code are a conflict. */
  async create(actor: Actor, plan: Plan): Promise<Ok<{ created: boolean; plan: StoredPlan }> | PlanExists> {
    const result = await createPlan(this.pool, plan, auditActorOf(actor));
    if (result.created) return ok({ created: true, plan: result.plan });
    // jsonb reorders object keys, so the terms are compared in canonical form.
    if (canonicalJson(planTerms(result.existing)) === canonicalJson(plan)) return ok({ created: false, plan: result.existing });
    return {
      ...refuse(
        'conflict',
        'plan_exists',
        `Plan "${plan.id}" already exists with other terms; plans never change: create the new terms under a new code.`,
      ),
      details: { existing: result.existing },
    };
  }

  async get(code: string): Promise<Result<StoredPlan, 'unknown_plan'>> {
    const plan = await getPlan(this.pool, code);
    return plan ? ok(plan) : refuse('not_found', 'unknown_plan', `No plan "${code}".`);
  }

  list(limit: number, after?: string): Promise<StoredPlan[]> {
    return listPlans(this.pool, limit, after);
  }
}
