import pg from 'pg';
import type { Logger } from 'pino';
import type { KeyCache } from './cache';

/** The channel the api_keys trigger notifies, with the changed key's id as payload. */
export const KEY_CHANGES_CHANNEL = 'api_keys_changed';
export const LISTENER_APPLICATION_NAME = 'meterflow-key-listener';

const MIN_RETRY_MS = 100;
const MAX_RETRY_MS = 5000;

export interface ListenerOptions {
  databaseUrl: string;
  cache: KeyCache<{ id: string }>;
  logger: Logger;
}

/**
 * Keeps the key cache honest: a dedicated connection (not from the pool: a pooled client would be
 * handed back and its LISTEN lost) receives every key change and evicts that key. When the
 * connection drops, notifications may be lost, so the cache is emptied and disabled until the
 * connection and its LISTEN are back; reconnects back off from 100 ms to 5 s.
 */
export class KeyInvalidationListener {
  private client: pg.Client | undefined;
  private closed = false;
  private retryMs = MIN_RETRY_MS;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ListenerOptions) {}

  /** Resolves once listening; a failure here fails the start (the database is needed anyway). */
  async start(): Promise<void> {
    await this.connect();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.opts.cache.setLive(false);
    await this.client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.opts.databaseUrl,
      application_name: LISTENER_APPLICATION_NAME,
      // A silently dead TCP connection would otherwise keep the cache "live" while deaf.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    client.on('notification', (msg) => {
      if (msg.channel === KEY_CHANGES_CHANNEL && msg.payload) this.opts.cache.evict(msg.payload);
    });
    client.on('error', (err) => this.opts.logger.warn({ err }, 'API key change listener lost its connection'));
    client.on('end', () => this.lost(client));
    try {
      await client.connect();
      await client.query(`listen ${KEY_CHANGES_CHANNEL}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      await client.end();
      return;
    }
    this.client = client;
    this.retryMs = MIN_RETRY_MS;
    // Changes made while nobody listened were never heard: start from an empty cache.
    this.opts.cache.setLive(true);
  }

  private lost(client: pg.Client): void {
    if (client !== this.client) return;
    this.client = undefined;
    this.opts.cache.setLive(false);
    if (!this.closed) this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    this.retryTimer = setTimeout(() => {
      this.connect().then(
        () => this.opts.logger.info('API key change listener reconnected; key cache cleared'),
        (err: unknown) => {
          this.opts.logger.warn({ err, retryInMs: this.retryMs }, 'API key change listener cannot reconnect yet');
          this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
          if (!this.closed) this.scheduleReconnect();
        },
      );
    }, this.retryMs);
    this.retryTimer.unref();
  }
}
