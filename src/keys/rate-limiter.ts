import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';

/** Window over which a key's burst allowance refills. */
export const BURST_WINDOW_SECONDS = 10;

export interface RatePolicy {
  ratePerSecond: number;
  /** Extra requests allowed above the steady rate, per burst window. */
  burst: number;
}

export interface RateWindow {
  policy: 'per-second' | 'burst' | 'auth-failures';
  quota: number;
  windowSeconds: number;
  remaining: number;
  resetMs: number;
}

export interface RateDecision {
  allowed: boolean;
  windows: RateWindow[];
  /** When refused: how long until a request can succeed. */
  retryAfterMs: number;
}

interface Limiters {
  steady: RateLimiterMemory;
  burst: RateLimiterMemory | null;
}

type Outcome = { ok: boolean; res: RateLimiterRes };

/** rate-limiter-flexible resolves when points remain and rejects with the same result type when not. */
const settle = (attempt: Promise<RateLimiterRes>): Promise<Outcome> =>
  attempt.then(
    (res) => ({ ok: true, res }),
    (err: unknown) => {
      if (err instanceof RateLimiterRes) return { ok: false, res: err };
      throw err;
    },
  );

/**
 * Per-key limits in process memory with rate-limiter-flexible's RateLimiterMemory (maintained,
 * dependency-free, used widely): a steady budget of `ratePerSecond` per 1-second window, and
 * once that is spent, a burst allowance of `burst` extra requests per 10-second window — the
 * library's BurstyRateLimiter composition, done here by hand so both windows' remaining counts
 * can be reported in the RateLimit header (BurstyRateLimiter reports only the first).
 *
 * One limiter pair per distinct policy (keys sharing limits share it, keyed by key id); a
 * key's counters live only while its windows run. Limits are per process: N API processes
 * allow up to N times a key's rate (see DESIGN.md, "Scale beyond one machine").
 */
export class KeyRateLimiter {
  private readonly byPolicy = new Map<string, Limiters>();

  async consume(keyId: string, policy: RatePolicy): Promise<RateDecision> {
    const limiters = this.limitersFor(policy);
    const steady = await settle(limiters.steady.consume(keyId));
    let burst: Outcome | null = null;
    if (limiters.burst) {
      burst = steady.ok ? await this.peek(limiters.burst, keyId) : await settle(limiters.burst.consume(keyId));
    }
    const allowed = steady.ok || (burst?.ok ?? false);
    const windows: RateWindow[] = [
      {
        policy: 'per-second',
        quota: policy.ratePerSecond,
        windowSeconds: 1,
        remaining: steady.res.remainingPoints,
        resetMs: steady.res.msBeforeNext,
      },
    ];
    if (burst) {
      windows.push({
        policy: 'burst',
        quota: policy.burst,
        windowSeconds: BURST_WINDOW_SECONDS,
        remaining: burst.res.remainingPoints,
        resetMs: burst.res.msBeforeNext,
      });
    }
    // Refused means every window is spent: the first one to reset lets the next request through.
    const retryAfterMs = allowed ? 0 : Math.min(...windows.map((w) => w.resetMs));
    return { allowed, windows, retryAfterMs };
  }

  private async peek(limiter: RateLimiterMemory, keyId: string): Promise<Outcome> {
    const res = await limiter.get(keyId);
    return { ok: true, res: res ?? new RateLimiterRes(limiter.points, BURST_WINDOW_SECONDS * 1000, 0) };
  }

  private limitersFor(policy: RatePolicy): Limiters {
    const id = `${policy.ratePerSecond}:${policy.burst}`;
    let limiters = this.byPolicy.get(id);
    if (!limiters) {
      limiters = {
        steady: new RateLimiterMemory({ points: policy.ratePerSecond, duration: 1 }),
        burst: policy.burst > 0 ? new RateLimiterMemory({ points: policy.burst, duration: BURST_WINDOW_SECONDS }) : null,
      };
      this.byPolicy.set(id, limiters);
    }
    return limiters;
  }
}

export interface AuthFailurePolicy {
  /** Failed authentications an address may make per window before it is refused outright. */
  limit: number;
  windowSeconds: number;
}

/** The defaults of AUTH_FAILURE_LIMIT and AUTH_FAILURE_WINDOW_SECONDS (src/config.ts). */
export const defaultAuthFailurePolicy: AuthFailurePolicy = { limit: 30, windowSeconds: 60 };

/**
 * Failed authentications per client address, in process memory (rate-limiter-flexible). Once an
 * address has spent its failures it is refused before its key is even looked at, so unknown keys
 * cannot buy unlimited database lookups: a lookup is charged up front (`charge`) and refunded
 * only when it finds a valid key (`refund`); a failure answered from memory is charged after.
 */
export class AuthFailureLimiter {
  private readonly limiter: RateLimiterMemory;

  constructor(private readonly policy: AuthFailurePolicy = defaultAuthFailurePolicy) {
    this.limiter = new RateLimiterMemory({ points: policy.limit, duration: policy.windowSeconds });
  }

  /** Where the address stands, without charging it. */
  async check(address: string): Promise<RateDecision> {
    const res = await this.limiter.get(address);
    return this.decision(
      res ?? new RateLimiterRes(this.policy.limit, this.policy.windowSeconds * 1000, 0),
      res ? res.consumedPoints < this.policy.limit : true,
    );
  }

  async charge(address: string): Promise<RateDecision> {
    const outcome = await settle(this.limiter.consume(address));
    return this.decision(outcome.res, outcome.ok);
  }

  async refund(address: string): Promise<void> {
    await this.limiter.reward(address, 1);
  }

  private decision(res: RateLimiterRes, allowed: boolean): RateDecision {
    const window: RateWindow = {
      policy: 'auth-failures',
      quota: this.policy.limit,
      windowSeconds: this.policy.windowSeconds,
      remaining: Math.max(0, res.remainingPoints),
      resetMs: res.msBeforeNext,
    };
    return { allowed, windows: [window], retryAfterMs: allowed ? 0 : res.msBeforeNext };
  }
}
