import { z } from 'zod';
import { Decimal, UNSIGNED_DECIMAL_PATTERN } from './money';

/* The edge's schema of spend thresholds (progressive billing); what they mean is spend-thresholds.ts. */

const PositiveAmount = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a decimal string such as "500.00"') })
  .regex(UNSIGNED_DECIMAL_PATTERN, { abort: true, error: 'must be a non-negative decimal string such as "500.00" (no exponent)' })
  .refine((text) => new Decimal(text).gt(0), { error: 'must be greater than 0' });

export const SpendThresholdsSchema = z
  .strictObject({
    amounts: z
      .array(PositiveAmount)
      .max(50, 'at most 50 amounts')
      .default([])
      .meta({ description: 'Priced usage of the period at which an interim invoice is issued, e.g. ["500.00", "2000.00"].' }),
    every: PositiveAmount.nullable()
      .default(null)
      .meta({ description: 'A recurring step: an interim invoice each time priced usage reaches a multiple of it. Null: none.' }),
  })
  .meta({
    id: 'SpendThresholds',
    description:
      "Progressive billing: when the open period's priced usage (usage lines, without the base fee or minimum commitment) reaches a " +
      'threshold, an interim invoice bills the usage so far; the period invoice bills the rest. Both empty: no interim invoices.',
  });
export type SpendThresholds = z.infer<typeof SpendThresholdsSchema>;
