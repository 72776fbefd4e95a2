import { z } from 'zod';
import { isCurrency, minorUnits } from '../domain/currencies';
import { InstantSchema, storable } from '../domain/edge-schemas';
import { UNSIGNED_DECIMAL_PATTERN } from '../domain/money';
import { CurrencySchema } from '../domain/pricing/schema';
import { grantSources } from './store';

/*
 * What a caller sends to grant credit or set the automatic top-up: one schema for the API and
 * the CLI, so both refuse the same input with the same words.
 */

const Amount = z
  .string({ error: 'must be a decimal string such as "50.00"' })
  .regex(UNSIGNED_DECIMAL_PATTERN, 'must be a decimal string such as "50.00"');

/** An amount must be whole minor units of the currency: credit is never a fraction of a cent. */
function inMinorUnits(ctx: z.RefinementCtx, currency: unknown, amount: unknown, path: string, positive: boolean): void {
  if (typeof currency !== 'string' || !isCurrency(currency) || typeof amount !== 'string' || !UNSIGNED_DECIMAL_PATTERN.test(amount)) return;
  const [, fraction = ''] = amount.split('.');
  if (fraction.replace(/0+$/, '').length > minorUnits(currency))
    ctx.addIssue({ code: 'custom', path: [path], message: `must have at most ${minorUnits(currency)} decimal places for ${currency}` });
  if (positive && !/[1-9]/.test(amount)) ctx.addIssue({ code: 'custom', path: [path], message: 'must be greater than 0' });
}

export const CreditGrantInputSchema = z
  .strictObject({
    reference: storable(z.string({ error: 'is required' }).min(1).max(200)).meta({
      description:
        'Your unique reference for this grant (an order id, say): the natural key. Sending the same grant again returns it; ' +
        'a purchase whose provider answer was lost is completed by repeating the request with the same reference.',
      example: 'order-2026-0042',
    }),
    source: z.enum(grantSources).meta({ description: 'purchased: charged through the payment provider; promotional: granted free' }),
    currency: CurrencySchema,
    amount: Amount.meta({ description: 'Credit granted, in whole minor units of the currency', example: '50.00' }),
    priority: z
      .number()
      .int()
      .min(0)
      .max(1000)
      .default(0)
      .meta({ description: 'Drawn in ascending priority (0 first), then earliest expiry, then oldest' }),
    expires_at: InstantSchema.nullable()
      .default(null)
      .meta({ description: 'When what is left of the grant expires (a durable timer writes the expiry); null: never' }),
  })
  .superRefine((input, ctx) => inMinorUnits(ctx, input.currency, input.amount, 'amount', true))
  .meta({ id: 'CreditGrantInput' });
export type CreditGrantInput = z.infer<typeof CreditGrantInputSchema>;

export const AutoTopUpInputSchema = z
  .strictObject({
    currency: CurrencySchema,
    threshold: Amount.meta({
      description:
        'Top up when the balance falls below this: after an invoice drew credits, after an expiry, and (credit_only) when the open period leaves less credit than this',
      example: '10.00',
    }),
    amount: Amount.meta({ description: 'How much credit each top-up purchases', example: '50.00' }),
    enabled: z.boolean().default(true),
  })
  .superRefine((input, ctx) => {
    inMinorUnits(ctx, input.currency, input.threshold, 'threshold', false);
    inMinorUnits(ctx, input.currency, input.amount, 'amount', true);
  })
  .meta({ id: 'CreditAutoTopUpInput' });
export type AutoTopUpInput = z.infer<typeof AutoTopUpInputSchema>;
