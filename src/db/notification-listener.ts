import pg from 'pg';
import type { Logger } from 'pino';
import { createClient } from './pool';

const MIN_RETRY_MS = 100;
const MAX_RETRY_MS = 5000;

export interface NotificationListenerOptions {
  databaseUrl: string;
  channel: string;
  /** Names the connection in pg_stat_activity, where operators (and tests) find it. */
  applicationName: string;
  /** What the log calls this listener, e.g. "API key change listener". */
  name: string;
  logger: Logger;
  /** Each notification's payload, in commit order. */
  onNotification(payload: string): void;
  /**
   * After every (re)connect, once LISTEN is in place: changes made while nobody listened were
   * never heard, so this is where the owner catches up (on `client`, the listening connection).
   * Notifications arriving meanwhile are held and delivered, in order, after it; a failure
   * counts as a failed connect.
   */
  onListening(client: pg.Client): void | Promise<void>;
  /** The connection is gone (or closed): notifications may be missed until `onListening` runs again. */
  onLost(): void;
}

/**
 * LISTEN on a dedicated connection (not from the pool: a pooled client would be handed back and
 * its LISTEN lost), reconnecting with a backoff from 100 ms to 5 s. What to do while deaf is the
 * owner's decision (`onLost`), and so is how to catch up after a reconnect (`onListening`).
 */
export class NotificationListener {
  private client: pg.Client | undefined;
  private closed = false;
  private retryMs = MIN_RETRY_MS;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: NotificationListenerOptions) {}

  /** Resolves once listening and caught up; a failure here fails the start (the database is needed anyway). */
  async start(): Promise<void> {
    await this.connect();
  }

  get listening(): boolean {
    return this.client !== undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.opts.onLost();
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = createClient({
      connectionString: this.opts.databaseUrl,
      application_name: this.opts.applicationName,
      // A silently dead TCP connection would otherwise look like a quiet channel.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    let held: string[] | undefined = [];
    client.on('notification', (msg) => {
      if (msg.channel !== this.opts.channel) return;
      if (held) held.push(msg.payload ?? '');
      else this.opts.onNotification(msg.payload ?? '');
    });
    client.on('error', (err) => this.opts.logger.warn({ err }, `${this.opts.name} lost its connection`));
    let ended = false;
    client.on('end', () => {
      ended = true;
      this.lost(client);
    });
    try {
      await client.connect();
      await client.query(`listen ${pg.escapeIdentifier(this.opts.channel)}`);
      await this.opts.onListening(client);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      // close() ran while connecting: leave the owner in its closed state.
      this.opts.onLost();
      await client.end();
      return;
    }
    this.client = client;
    this.retryMs = MIN_RETRY_MS;
    const pending = held;
    held = undefined;
    for (const payload of pending) this.opts.onNotification(payload);
    // Lost while catching up, before it counted as the connection: `lost` ignored it then.
    if (ended) this.lost(client);
  }

  private lost(client: pg.Client): void {
    if (client !== this.client) return;
    this.client = undefined;
    this.opts.onLost();
    if (!this.closed) this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    this.retryTimer = setTimeout(() => {
      this.connect().then(
        () => this.opts.logger.info(`${this.opts.name} reconnected`),
        (err: unknown) => {
          this.opts.logger.warn({ err, retryInMs: this.retryMs }, `${this.opts.name} cannot reconnect yet`);
          this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
          if (!this.closed) this.scheduleReconnect();
        },
      );
    }, this.retryMs);
    this.retryTimer.unref();
  }
}
