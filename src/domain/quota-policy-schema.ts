import Decimal from 'decimal.js';
import { z } from 'zod';
import { storable } from './edge-schemas';
import { quote } from './input-checks';
import { IsoDurationSchema } from './periods-schema';
import { thresholdKey } from './threshold-key';

/* The edge's schemas of a plan's limits and of a limit's state; their evaluation is quota-policy.ts. */

/** Limits and thresholds, matching plan amounts: plain digits, at most 20 on each side of the point. */
const LIMIT_PATTERN = /^\d{1,20}(\.\d{1,20})?$/;

const NonNegativeDecimal = z
  .string({
    error: (issue) =>
      issue.input === undefined
        ? 'is required'
        : 'must be a decimal string such as "1000" or "12.5"; JSON numbers are refused to keep limits exact',
  })
  .regex(LIMIT_PATTERN, {
    error: (issue) =>
      `${quote(issue.input)} is not a non-negative decimal string: use plain digits such as "1000" or "12.5" (no sign, exponent, NaN or Infinity)`,
  });

const PercentThresholdSchema = z
  .strictObject({
    percent: z
      .number({ error: 'must be a number of percent such as 80' })
      .positive('must be greater than 0')
      .max(1000, 'must be at most 1000')
      .meta({ description: 'Percent of hard_limit; above 100 warns about overage when at_hard_limit is allow.' }),
  })
  .meta({ id: 'PercentThreshold' });

const AbsoluteThresholdSchema = z
  .strictObject({
    absolute: NonNegativeDecimal.refine((text) => !LIMIT_PATTERN.test(text) || new Decimal(text).gt(0), 'must be greater than 0').meta({
      description: 'Usage, in meter units, at which to notify.',
    }),
  })
  .meta({ id: 'AbsoluteThreshold' });

/** zod reports a failed union as a whole, so the message says which field was wrong and how. */
function thresholdShapeError(input: unknown): string {
  const keys = input !== null && typeof input === 'object' ? Object.keys(input) : [];
  if (keys.includes('percent') && keys.includes('absolute')) return 'give either percent or absolute, not both';
  if (keys.includes('percent')) return `percent must be a number such as 80 (got ${quote((input as { percent: unknown }).percent)})`;
  if (keys.includes('absolute'))
    return `absolute must be a decimal string such as "1000" (got ${quote((input as { absolute: unknown }).absolute)})`;
  return 'must be { "percent": 80 } or { "absolute": "1000" }';
}

export const SoftThresholdSchema = z
  .union([PercentThresholdSchema, AbsoluteThresholdSchema], { error: (issue) => thresholdShapeError(issue.input) })
  .meta({ id: 'SoftThreshold' });
export type SoftThreshold = z.infer<typeof SoftThresholdSchema>;

export const hardLimitActions = ['block', 'allow'] as const;
export type HardLimitAction = (typeof hardLimitActions)[number];

export const MeterLimitSchema = z
  .strictObject({
    meter: storable(z.string({ error: 'is required' }).min(1, 'must not be empty').max(200, 'must be at most 200 characters')),
    soft_thresholds: z.array(SoftThresholdSchema).default([]).meta({ description: 'Each notifies once per period when usage reaches it.' }),
    hard_limit: NonNegativeDecimal.optional().meta({ description: 'Usage above this is over the limit; usage equal to it is not.' }),
    grace_period: IsoDurationSchema.optional().meta({
      description: 'How long usage may stay over the hard limit before it is blocked (block only). Absent: blocked at once.',
      example: 'PT1H',
    }),
    at_hard_limit: z
      .enum(hardLimitActions, { error: 'must be "block" (refuse usage after the grace period) or "allow" (bill it as overage)' })
      .optional()
      .meta({ description: 'Required with hard_limit.' }),
  })
  .superRefine((limit, ctx) => {
    if (limit.hard_limit === undefined && limit.soft_thresholds.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['hard_limit'], message: 'a limit needs a hard_limit, soft_thresholds or both' });
    }
    if (limit.hard_limit !== undefined && limit.at_hard_limit === undefined) {
      ctx.addIssue({ code: 'custom', path: ['at_hard_limit'], message: 'is required with hard_limit: "block" or "allow"' });
    }
    if (limit.hard_limit === undefined && limit.at_hard_limit !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['at_hard_limit'], message: 'applies only with a hard_limit' });
    }
    if (limit.grace_period !== undefined && limit.at_hard_limit !== 'block') {
      ctx.addIssue({
        code: 'custom',
        path: ['grace_period'],
        message: 'applies only when at_hard_limit is "block"; usage past an "allow" limit is billed, never blocked',
      });
    }
    const seen = new Map<string, number>();
    limit.soft_thresholds.forEach((threshold, i) => {
      if ('percent' in threshold && limit.hard_limit === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['soft_thresholds', i, 'percent'],
          message: 'a percent threshold is a percent of hard_limit, which is not set',
        });
      }
      // Refinements run even after a field failed its own checks; only well-formed values have a key.
      if ('percent' in threshold ? typeof threshold.percent !== 'number' : !LIMIT_PATTERN.test(threshold.absolute)) return;
      const key = thresholdKey(threshold);
      const first = seen.get(key);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['soft_thresholds', i], message: `duplicates soft_thresholds[${first}] (${key})` });
      } else {
        seen.set(key, i);
      }
    });
  })
  .meta({ id: 'MeterLimit' });

export type MeterLimit = z.infer<typeof MeterLimitSchema>;

/** A plan's limits: at most one per meter. */
export const MeterLimitsSchema = z
  .array(MeterLimitSchema)
  .superRefine((limits, ctx) => {
    const seen = new Set<string>();
    limits.forEach((limit, i) => {
      if (seen.has(limit.meter))
        ctx.addIssue({ code: 'custom', path: [i, 'meter'], message: `meter "${limit.meter}" already has a limit` });
      seen.add(limit.meter);
    });
  })
  .meta({ id: 'MeterLimits' });

const Timestamp = z.iso.datetime();

/** The hard-limit state of one meter in one period. Timestamps are ISO 8601 UTC strings so the state travels as JSON. */
export const LimitStateSchema = z
  .discriminatedUnion('status', [
    z.strictObject({ status: z.literal('ok') }),
    z.strictObject({ status: z.literal('over_limit_in_grace'), over_since: Timestamp, grace_ends_at: Timestamp }),
    z.strictObject({ status: z.literal('blocked'), over_since: Timestamp, blocked_since: Timestamp }),
    z.strictObject({ status: z.literal('overage'), over_since: Timestamp }),
  ])
  .meta({ id: 'LimitState' });

export type LimitState = z.infer<typeof LimitStateSchema>;
export type LimitStatus = LimitState['status'];
