import type { Server, ServerResponse } from 'node:http';
import type { Express } from 'express';

export interface HttpServer {
  server: Server;
  /**
   * Stops accepting connections and resolves once every open one has closed: an idle one at
   * once, one busy with a request when its response is sent, which says `Connection: close` so
   * that its client sends nothing more on it. Not after the keep-alive timeout.
   */
  close(): Promise<void>;
}

/**
 * Serves the API app. An idle keep-alive connection stays open `keepAliveTimeoutSeconds`, longer
 * than whatever keeps connections to the API open idles them (AWS ALB and nginx: 60 s), so that
 * side closes first. When the API closes one instead, a client sending on it at that moment gets
 * ECONNRESET (a proxy, a 502). With Node's 5 s (it closes after 6), 164 of 400 requests failed
 * that way, sent in bursts of 20 on connections idle 5.95–6.01 s by a client busy for 80 ms
 * before it sent them; none with 65 s. `bench:ingest`'s open loop met it once.
 */
export async function serveHttp(app: Express, opts: { port: number; host: string; keepAliveTimeoutSeconds: number }): Promise<HttpServer> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(opts.port, opts.host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  server.keepAliveTimeout = opts.keepAliveTimeoutSeconds * 1000;
  const unanswered = new Set<ServerResponse>();
  let closing = false;
  // Ahead of the app, so that the header is set before any handler can send its response.
  server.prependListener('request', (_req, res: ServerResponse) => {
    if (closing) {
      res.setHeader('connection', 'close');
      return;
    }
    unanswered.add(res);
    // 'close' follows every response, sent in full or cut off with its connection.
    res.once('close', () => unanswered.delete(res));
  });
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        for (const res of unanswered) if (!res.headersSent) res.setHeader('connection', 'close');
        // A response already under way (its headers sent) leaves its connection idle when it ends.
        const sweep = setInterval(() => server.closeIdleConnections(), 100);
        server.close(() => {
          clearInterval(sweep);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
