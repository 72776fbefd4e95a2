/*
 * Where a customer refused for its spend limit (402) is sent to add money: one link per customer,
 * from the TOP_UP_URL template, whose `{customer}` placeholder becomes the customer's external id
 * (URL-encoded). The default template is the customer's own credits resource, which exists and
 * which its key may POST a purchase to; an operator with a billing page points it there instead.
 */

/** The template's placeholder for the customer's external id. */
export const CUSTOMER_PLACEHOLDER = '{customer}';

/** The default TOP_UP_URL: the customer's credits (balance on GET, purchase on POST). */
export const DEFAULT_TOP_UP_URL = `/v1/customers/${CUSTOMER_PLACEHOLDER}/credits`;

/** The customer's top-up link; a template without the placeholder is the same link for everyone. */
export const topUpLinkFor = (template: string, customer: string): string =>
  template.replaceAll(CUSTOMER_PLACEHOLDER, encodeURIComponent(customer));
