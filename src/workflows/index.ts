export * from './billing-period';
export * from './invoice-collection';
export * from './reconciliation';
