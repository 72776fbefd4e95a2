/*
 * When a plan change takes effect, when the request says: at once, or at the end of the period in
 * progress. Without it, the direction decides (src/domain/plan-change-direction.ts): an upgrade at
 * once, a downgrade at the period end. Its own file, free of pricing, so the billing workflow's
 * Update validator can check it without bundling the tariff engine.
 */
export const changeEffects = ['immediately', 'period_end'] as const;
export type ChangeEffect = (typeof changeEffects)[number];

export const isChangeEffect = (value: unknown): value is ChangeEffect => changeEffects.some((e) => e === value);
