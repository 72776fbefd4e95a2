import { recordAudit, type AuditActor } from '../db/audit';
import type { Pool } from '../db/pool';
import type { Plan } from '../domain/plan';
import { inTransaction, type Queryable } from '../db/transaction';

export type StoredPlan = Plan & { createdAt: Date };

/** The columns holding a plan's terms, for queries that join plans under the alias `p`. */
export const planTermColumns =
  'p.code, p.name, p.currency, p.rounding, p.base_fee, p.minimum_commitment, p.charges, p.limits, p.billing_interval, p.settlement, ' +
  'p.proration, p.tiers_across_segments';
const planColumns = `${planTermColumns}, p.created_at`;

export interface PlanTermsRow {
  code: string;
  name: string;
  currency: Plan['currency'];
  rounding: NonNullable<Plan['rounding']> | null;
  base_fee: string | null;
  minimum_commitment: string | null;
  charges: Plan['charges'];
  limits: Plan['limits'];
  billing_interval: Plan['interval'];
  settlement: NonNullable<Plan['settlement']> | null;
  proration: NonNullable<Plan['proration']> | null;
  tiers_across_segments: NonNullable<Plan['tiers_across_segments']> | null;
}

type PlanRow = PlanTermsRow & { created_at: Date };

/**
 * Rows were validated by the plan schema before they were written and their terms never change, so
 * they are read back as they are. Absent optional fields stay absent: a plan reads back exactly
 * as it was created.
 */
export function toPlanTerms(r: PlanTermsRow): Plan {
  return {
    id: r.code,
    name: r.name,
    currency: r.currency,
    ...(r.rounding === null ? {} : { rounding: r.rounding }),
    ...(r.base_fee === null ? {} : { base_fee: r.base_fee }),
    ...(r.minimum_commitment === null ? {} : { minimum_commitment: r.minimum_commitment }),
    ...(r.proration === null ? {} : { proration: r.proration }),
    ...(r.tiers_across_segments === null ? {} : { tiers_across_segments: r.tiers_across_segments }),
    charges: r.charges,
    limits: r.limits,
    interval: r.billing_interval,
    ...(r.settlement === null ? {} : { settlement: r.settlement }),
  };
}

const toPlan = (r: PlanRow): StoredPlan => ({ ...toPlanTerms(r), createdAt: r.created_at });

/** A stored plan's terms, as created (what an identical retry is compared with). */
export const planTerms = ({ createdAt: _createdAt, ...plan }: StoredPlan): Plan => plan;

export type CreatePlanResult = { created: true; plan: StoredPlan } | { created: false; existing: StoredPlan };

/** Stores a validated plan with its audit entry, or returns the plan that already has the code. */
export async function createPlan(pool: Pool, plan: Plan, actor: AuditActor): Promise<CreatePlanResult> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<PlanRow>(
      `insert into plans as p (code, name, currency, rounding, base_fee, minimum_commitment, charges, limits, billing_interval, settlement,
                            proration, tiers_across_segments)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) on conflict (code) do nothing returning ${planColumns}`,
      [
        plan.id,
        plan.name,
        plan.currency,
        plan.rounding ?? null,
        plan.base_fee ?? null,
        plan.minimum_commitment ?? null,
        JSON.stringify(plan.charges),
        JSON.stringify(plan.limits),
        JSON.stringify(plan.interval),
        plan.settlement ?? null,
        plan.proration ?? null,
        plan.tiers_across_segments ?? null,
      ],
    );
    if (!rows[0]) return { created: false, existing: (await getPlan(client, plan.id))! };
    await recordAudit(client, {
      actor,
      action: 'plan.created',
      subjectType: 'plan',
      subjectId: plan.id,
      details: { name: plan.name, currency: plan.currency },
    });
    return { created: true, plan: toPlan(rows[0]) };
  });
}

export async function getPlan(db: Queryable, code: string): Promise<StoredPlan | undefined> {
  const { rows } = await db.query<PlanRow>(`select ${planColumns} from plans p where p.code = $1`, [code]);
  return rows[0] && toPlan(rows[0]);
}

export async function listPlans(pool: Pool, limit: number, after?: string): Promise<StoredPlan[]> {
  const { rows } = await pool.query<PlanRow>(
    `select ${planColumns} from plans p where ($2::text is null or p.code > $2) order by p.code limit $1`,
    [limit, after ?? null],
  );
  return rows.map(toPlan);
}
