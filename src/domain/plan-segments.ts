/*
 * A subscription's plan timeline and the segments it cuts a billing period into. A plan change
 * takes effect at an instant; a period with changes inside it is split there into half-open
 * [start, end) segments, each billed on its own plan, so an event belongs to exactly one segment:
 * the one whose start is at or before its time and whose end is after it (an event exactly on a
 * change instant belongs to the new plan). Pure, over epoch milliseconds.
 */

/** One plan change: from `at` (epoch ms) on, the subscription is on `toPlan`. */
export interface PlanChangeAt {
  at: number;
  toPlan: string;
}

/** The plan a subscription started on and its changes, in the order they take effect. */
export interface PlanTimeline {
  initialPlan: string;
  changes: readonly PlanChangeAt[];
}

/** A stretch of a billing period on one plan: half-open [start, end), epoch ms. */
export interface PlanSegment {
  planCode: string;
  start: number;
  end: number;
}

/** The plan in effect at `at`: the target of the last change effective by then, else the initial plan. */
export function planAt(timeline: PlanTimeline, at: number): string {
  let plan = timeline.initialPlan;
  for (const change of timeline.changes) if (change.at <= at) plan = change.toPlan;
  return plan;
}

/**
 * [from, to) cut at every change strictly inside it. Changes at the same instant leave only the
 * last one's plan; neighbours on the same plan (a change back within an instant) are merged, so
 * segments never have zero length and consecutive segments differ in plan.
 */
export function planSegments(timeline: PlanTimeline, from: number, to: number): PlanSegment[] {
  if (!(to > from)) return [];
  const cuts = [...new Set(timeline.changes.map((c) => c.at).filter((at) => at > from && at < to))].sort((a, b) => a - b);
  const bounds = [from, ...cuts, to];
  const segments: PlanSegment[] = [];
  for (let i = 0; i < bounds.length - 1; i++) {
    const start = bounds[i]!;
    const end = bounds[i + 1]!;
    const planCode = planAt(timeline, start);
    const previous = segments[segments.length - 1];
    if (previous?.planCode === planCode) previous.end = end;
    else segments.push({ planCode, start, end });
  }
  return segments;
}

/** The segment holding `at`, if any: the one bound for an event at that instant. */
export function segmentOf(segments: readonly PlanSegment[], at: number): PlanSegment | undefined {
  return segments.find((s) => s.start <= at && at < s.end);
}
