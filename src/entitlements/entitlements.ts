import type { Logger } from 'pino';
import { z } from 'zod';
import type { Clock } from '../clock';
import { NotificationListener } from '../db/notification-listener';
import { EntitlementStore, type EntitlementChange } from './store';

/** The channel the entitlements trigger notifies, with the changed row as JSON. */
export const ENTITLEMENT_CHANGES_CHANNEL = 'entitlements_changed';
export const ENTITLEMENT_LISTENER_APPLICATION_NAME = 'meterflow-entitlement-listener';

const ChangeSchema = z.object({
  customer_id: z.string(),
  meter: z.string(),
  blocked: z.boolean(),
  resets_at: z.iso.datetime({ offset: true }),
  usage: z.string().nullish(),
  hard_limit: z.string().nullish(),
  limit_state: z.string().nullish(),
  notified: z.array(z.string()).nullish(),
  usage_as_of: z.iso.datetime({ offset: true }).nullish(),
  next_decision: z.string().nullish(),
  spend_blocked: z.boolean().nullish(),
  spend_runway: z.string().nullish(),
  usage_counted_at: z.iso.datetime({ offset: true }).nullish(),
});
type ChangeRow = z.infer<typeof ChangeSchema>;

const toChange = (r: ChangeRow): EntitlementChange => ({
  customerId: r.customer_id,
  meter: r.meter,
  blocked: r.blocked,
  spendBlocked: r.spend_blocked ?? false,
  resetsAt: new Date(r.resets_at),
  ...(r.usage && r.limit_state && r.usage_as_of
    ? {
        quota: {
          usage: r.usage,
          hardLimit: r.hard_limit ?? null,
          state: r.limit_state,
          notified: r.notified ?? [],
          nextDecision: r.next_decision ?? null,
          spendRunway: r.spend_runway ?? null,
          asOf: new Date(r.usage_as_of),
          countedAt: r.usage_counted_at ? new Date(r.usage_counted_at) : null,
        },
      }
    : {}),
});

export interface EntitlementsOptions {
  /** For the dedicated LISTEN connection, which also loads the snapshots. */
  databaseUrl: string;
  clock: Clock;
  logger: Logger;
  upgradeUrl: string;
  /** Where a customer refused for its spend limit can top up or raise it (TOP_UP_URL). */
  topUpUrl: string;
}

export interface Entitlements {
  store: EntitlementStore;
  /** False while the change feed is down: the store then holds the last known state. */
  readonly live: boolean;
  close(): Promise<void>;
}

/**
 * The entitlements of every customer, in memory and kept current: loaded at start, changed by
 * each NOTIFY of the entitlements table, and reloaded in full after every reconnect.
 *
 * While the connection is down the store keeps the last known state rather than emptying (which
 * would let every blocked customer through during a database blip) or refusing everything (which
 * would stop all ingestion): blocks are rare, decided minutes after the fact by a grace period,
 * and lapse on their own at the period end, so a few seconds of staleness until the reload costs
 * little either way. Checks never fall back to the database.
 */
export async function startEntitlements(opts: EntitlementsOptions): Promise<Entitlements> {
  const logger = opts.logger.child({ component: 'entitlements' });
  const store = new EntitlementStore(opts.clock, opts.upgradeUrl, opts.topUpUrl);
  let live = false;
  let closing = false;
  const listener = new NotificationListener({
    databaseUrl: opts.databaseUrl,
    channel: ENTITLEMENT_CHANGES_CHANNEL,
    applicationName: ENTITLEMENT_LISTENER_APPLICATION_NAME,
    name: 'entitlement change listener',
    logger,
    onNotification: (payload) => {
      const change = parseChange(payload);
      if (change) store.apply(change);
      else logger.error({ payload }, 'ignored a malformed entitlement change notification');
    },
    onListening: async (client) => {
      // The same JSON the trigger sends, so one parser serves both.
      const { rows } = await client.query<{ row: ChangeRow }>(
        `select json_build_object('customer_id', customer_id, 'meter', meter, 'blocked', blocked, 'resets_at', resets_at,
           'usage', usage::text, 'hard_limit', hard_limit::text, 'limit_state', limit_state, 'notified', notified, 'usage_as_of', usage_as_of,
           'next_decision', next_decision::text, 'spend_blocked', spend_blocked, 'spend_runway', spend_runway::text,
           'usage_counted_at', usage_counted_at) as row
         from entitlements where blocked or spend_blocked or resets_at > now()`,
      );
      store.replace(rows.map((r) => toChange(ChangeSchema.parse(r.row))));
      live = true;
      logger.info({ blocked: rows.length }, 'entitlements loaded');
    },
    onLost: () => {
      if (live && !closing) logger.warn('entitlement changes are not heard until the listener reconnects: keeping the last known blocks');
      live = false;
    },
  });
  await listener.start();
  return {
    store,
    get live() {
      return live;
    },
    close: () => {
      closing = true;
      return listener.close();
    },
  };
}

function parseChange(payload: string): EntitlementChange | undefined {
  let json: unknown;
  try {
    json = JSON.parse(payload);
  } catch {
    return undefined;
  }
  const parsed = ChangeSchema.safeParse(json);
  if (!parsed.success) return undefined;
  return toChange(parsed.data);
}
