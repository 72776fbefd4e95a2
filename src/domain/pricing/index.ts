/** The tariff engine: pure, no I/O, importable from workflows, activities and the API alike. */
export { PricingError, pricePlan, unpricedMeters } from './price-plan';
export {
  ChargeSchema,
  CurrencySchema,
  PricedPlanSchema,
  PricePlanSchema,
  QuantitySchema,
  UsageSchema,
  chargeModels,
  pricePlanSchema,
  type BreakdownRow,
  type Charge,
  type ChargeModel,
  type PriceLine,
  type PricedPlan,
  type PricePlan,
  type Tier,
  type Usage,
} from './schema';
