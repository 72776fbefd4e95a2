import { loadConfig, type Config } from '../config';

/** The seller as printed on an invoice; snapshotted on the invoice when it is finalized. */
export interface Seller {
  name: string;
  address: string[];
  taxId: string | null;
  email: string | null;
}

/** The customer as printed on an invoice, snapshotted with the seller. */
export interface BillTo {
  name: string;
  externalId: string;
}

/** Who issues invoices, and the prefix of the gapless number series it issues them under. */
export interface InvoiceIssuer {
  seller: Seller;
  numberPrefix: string;
}

export const issuerFromConfig = (config: Config): InvoiceIssuer => ({
  seller: {
    name: config.SELLER_NAME,
    address: config.SELLER_ADDRESS,
    taxId: config.SELLER_TAX_ID ?? null,
    email: config.SELLER_EMAIL ?? null,
  },
  numberPrefix: config.INVOICE_NUMBER_PREFIX,
});

/** The issuer of a configuration that sets none of the SELLER_ variables (tests; production passes its config). */
export const defaultIssuer = (): InvoiceIssuer => issuerFromConfig(loadConfig({}));
