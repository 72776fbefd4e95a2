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
});

export interface EntitlementsOptions {
  /** For the dedicated LISTEN connection, which also loads the snapshots. */
  databaseUrl: string;
  clock: Clock;
  logger: Logger;
  upgradeUrl: string;
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
  const store = new EntitlementStore(opts.clock, opts.upgradeUrl);
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
      const { rows } = await client.query<{ customer_id: string; meter: string; resets_at: Date }>(
        'select customer_id, meter, resets_at from entitlements where blocked',
      );
      store.replace(rows.map((r) => ({ customerId: r.customer_id, meter: r.meter, blocked: true, resetsAt: r.resets_at })));
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
  const { customer_id, meter, blocked, resets_at } = parsed.data;
  return { customerId: customer_id, meter, blocked, resetsAt: new Date(resets_at) };
}
