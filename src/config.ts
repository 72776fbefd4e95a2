import { z } from 'zod';
import { IsoDurationSchema } from './domain/periods-schema';
import { allowListEntryProblem } from './domain/webhook-target-policy';
import { DEFAULT_TOP_UP_URL } from './domain/top-up-link';

const port = z.coerce.number().int().min(1).max(65535);

/**
 * Every environment variable the system reads, in one schema. The README's table mirrors it.
 * Empty strings count as unset so `FOO= npm start` behaves like not setting FOO.
 */
export const envSchema = z.object({
  HOST: z.string().default('127.0.0.1'),
  PORT: port.default(3000),
  // How long the API keeps an idle client connection open: longer than any proxy's or client's idle timeout in front of it (src/main/http-server.ts).
  HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(3600).default(65),
  DEMO: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATA_DIR: z.string().default('.data'),
  DATABASE_URL: z.string().url().optional(),
  PG_PORT: port.default(54320),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
  TEMPORAL_ADDRESS: z.string().optional(),
  TEMPORAL_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('billing'),
  EVENT_MAX_FUTURE_SKEW_SECONDS: z.coerce.number().int().min(0).default(300),
  ALLOWED_LATENESS_SECONDS: z.coerce.number().int().min(0).default(300),
  EVENT_LATE_AFTER_SECONDS: z.coerce.number().int().min(0).default(3600),
  TEMPORAL_CLI_PATH: z.string().optional(),
  TEMPORAL_TEST_SERVER_PATH: z.string().optional(),
  NODE_ENV: z.string().optional(),
  // "2:<secret>,1:<older secret>": versioned HMAC peppers for API keys (src/keys/pepper.ts).
  API_KEY_PEPPERS: z.string().optional(),
  API_KEY_CACHE_TTL_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
  API_KEY_CACHE_MAX_ENTRIES: z.coerce.number().int().min(1).default(10_000),
  API_KEY_DEFAULT_RATE_PER_SECOND: z.coerce.number().int().min(1).max(100_000).default(100),
  API_KEY_DEFAULT_BURST: z.coerce.number().int().min(0).max(1_000_000).default(200),
  // Failed authentications per client address and window before the address gets 429.
  AUTH_FAILURE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(30),
  AUTH_FAILURE_WINDOW_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
  // Where a customer refused for a blocked meter can raise its limits (in 429s and entitlement checks).
  UPGRADE_URL: z.string().min(1).default('/upgrade'),
  // Where the customer portal links a customer whose meter is blocked; unset: UPGRADE_URL.
  PORTAL_UPGRADE_URL: z.string().min(1).optional(),
  // Where a customer refused for its spend limit (402) tops up; `{customer}` becomes its external id.
  TOP_UP_URL: z.string().min(1).default(DEFAULT_TOP_UP_URL),
  // Waits between declined charge attempts, as ISO 8601 durations; after the last, payment_failed.
  DUNNING_SCHEDULE: z
    .string()
    .default('P1D,P3D,P7D')
    .transform((v) =>
      v
        .split(',')
        .map((d) => d.trim())
        .filter(Boolean),
    )
    .pipe(z.array(IsoDurationSchema).max(20)),
  // Stored usage reaches the billing workflows in slow reports, this often per customer with usage,
  // and at once when it comes within USAGE_SIGNAL_MARGIN (a fraction of the decision point) of the
  // next soft threshold or hard limit the workflow published (src/metering/usage-signaler.ts).
  USAGE_REPORT_INTERVAL_SECONDS: z.coerce.number().int().min(1).max(3600).default(300),
  USAGE_SIGNAL_MARGIN: z.coerce.number().min(0).max(1).default(0.1),
  // Raw events of billed periods that ended more than this many days ago may be archived to files
  // and deleted (npx meterflow events archive; src/retention/).
  EVENT_RETENTION_DAYS: z.coerce.number().int().min(0).max(36_500).default(400),
  // How many earlier finalized invoices late usage may still adjust (0: never).
  LATE_USAGE_LOOKBACK_INVOICES: z.coerce.number().int().min(0).max(36).default(3),
  // Who issues the invoices, printed on every invoice document and snapshotted on the invoice at
  // finalization (src/invoices/issuer.ts). SELLER_ADDRESS: lines separated by newlines or a literal \n.
  SELLER_NAME: z.string().trim().min(1).max(256).default('meterflow demo seller'),
  SELLER_ADDRESS: z
    .string()
    .default('')
    .transform((v) =>
      v
        .split(/\n|\\n/)
        .map((l) => l.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.string().max(256)).max(8)),
  SELLER_TAX_ID: z.string().trim().min(1).max(64).optional(),
  SELLER_EMAIL: z.email().optional(),
  // Invoice numbers read PREFIX-YYYY-NNNNNN, gapless per prefix and year of finalization: one
  // prefix per seller (src/invoices/numbering.ts).
  INVOICE_NUMBER_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9-]{0,19}$/, 'letters, digits and dashes, at most 20')
    .default('INV'),
  // The payment provider: the local simulator `npm start` runs, unless PROVIDER_URL points elsewhere.
  PROVIDER_URL: z.string().url().optional(),
  PROVIDER_PORT: port.default(4010),
  PROVIDER_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  // Requests per second one worker sends the provider (0: no limit). A charge waits for its turn
  // while it holds an activity slot, at most WORKER_MAX_CONCURRENT_ACTIVITIES / this many seconds.
  PROVIDER_MAX_REQUESTS_PER_SECOND: z.coerce.number().min(0).max(100_000).default(50),
  // Worker slots, per worker process (src/temporal/worker.ts; README "Scale"). A task beyond them
  // waits in Temporal's task queue, where no timeout runs; one that holds a slot runs against its
  // startToClose (1 minute; 5 for the close, issueAndCharge, which runs four of them in turn). The
  // worker's pool gets at least one connection per activity and local-activity slot, so no
  // activity waits for a connection.
  WORKER_MAX_CONCURRENT_ACTIVITIES: z.coerce.number().int().min(1).max(1000).default(10),
  WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES: z.coerce.number().int().min(1).max(1000).default(10),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: z.coerce.number().int().min(2).max(1000).default(20),
  // Workflows kept in memory between tasks; an evicted one replays its history on its next task.
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).max(1_000_000).default(2000),
  // After SIGTERM a worker polls no more and lets in-flight activities finish this long before it
  // cancels them; the default covers the longest startToClose that must drain, the period close's
  // 5 minutes (src/workflows/activity-timeouts.ts; test/unit/worker-limits.test.ts holds the two
  // together). A container runtime must wait longer before it kills the process (compose
  // stop_grace_period, Kubernetes terminationGracePeriodSeconds).
  WORKER_SHUTDOWN_GRACE_SECONDS: z.coerce.number().int().min(0).max(3600).default(300),
  // Webhook targets allowed besides public addresses, for local development: host names, IPs and
  // CIDR ranges, comma-separated (src/domain/webhook-target-policy.ts). Unset: public targets only.
  WEBHOOK_ALLOWED_TARGETS: z
    .string()
    .default('')
    .transform((v) =>
      v
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean),
    )
    .superRefine((entries, ctx) => {
      for (const entry of entries) {
        const problem = allowListEntryProblem(entry);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }
    }),
});

export type Config = z.infer<typeof envSchema>;

/** startToClose of the billing and collection activities (src/workflows); `checkedEnvSchema` keeps waits below it. */
const ACTIVITY_START_TO_CLOSE_MS = 60_000;

/** Rules across variables, checked after each variable's own. */
const checkedEnvSchema = envSchema.superRefine((c, ctx) => {
  // A charge holding an activity slot waits for its provider turn, then for the answer: both
  // inside the activity's 1-minute startToClose (src/workflows/invoice-collection.ts).
  const turnWaitMs = c.PROVIDER_MAX_REQUESTS_PER_SECOND
    ? (c.WORKER_MAX_CONCURRENT_ACTIVITIES / c.PROVIDER_MAX_REQUESTS_PER_SECOND) * 1000
    : 0;
  if (turnWaitMs + c.PROVIDER_TIMEOUT_MS > ACTIVITY_START_TO_CLOSE_MS / 2)
    ctx.addIssue({
      code: 'custom',
      path: ['PROVIDER_MAX_REQUESTS_PER_SECOND'],
      message: `a charge could wait ${Math.round(turnWaitMs)} ms for its turn plus PROVIDER_TIMEOUT_MS for the answer, more than half its ${ACTIVITY_START_TO_CLOSE_MS / 1000} s startToClose: raise the rate or lower WORKER_MAX_CONCURRENT_ACTIVITIES`,
    });
});

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = checkedEnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`Invalid environment:\n${lines.join('\n')}`);
  }
  return parsed.data;
}
