export { billingPeriodWorkflow } from './billing-period';
