import { z } from 'zod';
import { quote } from './input-checks';
import { UNSIGNED_DECIMAL_PATTERN, isDecimalString } from './money';
import { IsoDurationSchema } from './periods-schema';

/* The edge's schema of a spend cap; the limit's evaluation is spend-limit.ts. */

export const SpendCapSchema = z
  .strictObject({
    amount: z
      .string({
        error: (issue) =>
          issue.input === undefined
            ? 'is required'
            : 'must be a decimal string such as "250.00"; JSON numbers are refused to keep money exact',
      })
      .regex(UNSIGNED_DECIMAL_PATTERN, {
        error: (issue) =>
          typeof issue.input === 'string' && isDecimalString(issue.input)
            ? `must not be negative (got ${quote(issue.input)})`
            : `${quote(issue.input)} is not a decimal string: use plain digits such as "250.00"`,
      })
      .meta({
        description:
          "In the plan's currency (at most its minor-unit digits), per billing period. Once the period's priced usage reaches it, usage of charged meters is refused with 402.",
        example: '250.00',
      }),
    grace_period: IsoDurationSchema.optional().meta({
      description: 'How long usage is still accepted once the cap is reached, as for a hard limit. Absent: refused at once.',
      example: 'PT1H',
    }),
    soft_thresholds: z
      .array(
        z.strictObject({
          percent: z
            .number({ error: 'must be a number of percent such as 80' })
            .positive('must be greater than 0')
            .max(100, 'must be at most 100'),
        }),
      )
      .max(10, 'at most 10 thresholds')
      .optional()
      .meta({ description: 'Percent of the cap: each sends a spend_threshold_crossed webhook once per period when spend reaches it.' }),
  })
  .superRefine((cap, ctx) => {
    const seen = new Set<number>();
    cap.soft_thresholds?.forEach((t, i) => {
      if (typeof t?.percent !== 'number') return;
      if (seen.has(t.percent)) ctx.addIssue({ code: 'custom', path: ['soft_thresholds', i], message: `duplicates ${t.percent}%` });
      seen.add(t.percent);
    });
  })
  .meta({ id: 'SpendCap', description: 'A limit on what one billing period of usage may cost.' });

export type SpendCap = z.infer<typeof SpendCapSchema>;
