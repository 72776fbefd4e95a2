export * from './billing-period';
export * from './credit-expiry';
export * from './invoice-collection';
export * from './reconciliation';
