import { z } from 'zod';
import { parseIsoDuration } from './iso-duration';

/* The edge's schemas of durations and billing intervals; the arithmetic on them is periods.ts. */

function durationIssue(iso: string, allowZero: boolean): string | undefined {
  try {
    return parseIsoDuration(iso) === 0 && !allowZero ? 'must be longer than zero' : undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

const durationSchema = (allowZero: boolean) =>
  z.string().superRefine((iso, ctx) => {
    const message = durationIssue(iso, allowZero);
    if (message !== undefined) ctx.addIssue({ code: 'custom', message });
  });

/** A fixed ISO 8601 duration that `parseIsoDuration` accepts, zero included. */
export const IsoDurationSchema = durationSchema(true);

export const BillingIntervalSchema = z
  .discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('calendar_month') }).meta({
      description: 'Monthly from the subscription start (UTC): same day and time of day each month, the day clamped to short months.',
    }),
    z
      .strictObject({
        kind: z.literal('duration'),
        iso: durationSchema(false).meta({
          description: 'Fixed ISO 8601 duration (weeks, days, hours, minutes, seconds), e.g. PT5M for demos and tests.',
          example: 'PT5M',
        }),
      })
      .meta({ description: 'Back-to-back periods of a fixed length from the subscription start.' }),
  ])
  .meta({ id: 'BillingInterval' });

export type BillingInterval = z.infer<typeof BillingIntervalSchema>;
