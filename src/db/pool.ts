import pg from 'pg';

// NUMERIC and BIGINT stay strings: money and counters must never pass through a JS number.
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => v);
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => v);

export type Pool = pg.Pool;

/**
 * How long a request waits for a connection (a new one, or a free one from a full pool) before
 * failing. A refused connection fails at once; this bounds the wait when the server is
 * unreachable without refusing (a network partition), so requests answer 503 instead of hanging.
 */
export const CONNECT_TIMEOUT_MS = 5_000;

/** Swallows a client's connection errors: the query in flight (if any) rejects with them anyway. */
const ignoreClientError = () => undefined;

export function createPool(connectionString: string, max = 10): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max,
    application_name: 'meterflow',
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    // A silently dead TCP connection (no RST after a failover) would otherwise hang its query.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // pg-pool listens for errors only while a client is idle: a client checked out when its
  // connection dies (a restart, pg_terminate_backend) emits 'error' with no listener, which
  // crashes the process. A permanent listener on every client covers checked-out ones; pg-pool
  // still drops the broken client when it is released.
  pool.on('connect', (client) => client.on('error', ignoreClientError));
  // An idle client losing its connection must not crash the process either: it is removed.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * A standalone (unpooled) client that survives losing its connection: the query in flight, or
 * the next one, rejects instead of an unhandled 'error' event ending the process.
 */
export function createClient(config: pg.ClientConfig): pg.Client {
  const client = new pg.Client({ connectionTimeoutMillis: CONNECT_TIMEOUT_MS, ...config });
  client.on('error', ignoreClientError);
  return client;
}
