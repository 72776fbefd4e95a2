import type { Logger } from 'pino';
import { NotificationListener } from '../db/notification-listener';
import type { KeyCache } from './cache';

/** The channel the api_keys trigger notifies, with the changed key's id as payload. */
export const KEY_CHANGES_CHANNEL = 'api_keys_changed';
export const LISTENER_APPLICATION_NAME = 'meterflow-key-listener';

export interface ListenerOptions {
  databaseUrl: string;
  cache: KeyCache<{ id: string }>;
  logger: Logger;
}

/**
 * Keeps the key cache honest: every key change evicts that key. When the connection drops,
 * notifications may be lost, so the cache is emptied and disabled (requests verify against the
 * database) until the connection and its LISTEN are back, and then starts empty.
 */
export class KeyInvalidationListener {
  private readonly listener: NotificationListener;

  constructor(opts: ListenerOptions) {
    this.listener = new NotificationListener({
      databaseUrl: opts.databaseUrl,
      channel: KEY_CHANGES_CHANNEL,
      applicationName: LISTENER_APPLICATION_NAME,
      name: 'API key change listener',
      logger: opts.logger,
      onNotification: (id) => {
        if (id) opts.cache.evict(id);
      },
      onListening: () => opts.cache.setLive(true),
      onLost: () => opts.cache.setLive(false),
    });
  }

  /** Resolves once listening; a failure here fails the start (the database is needed anyway). */
  start(): Promise<void> {
    return this.listener.start();
  }

  close(): Promise<void> {
    return this.listener.close();
  }
}
