import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { checkResponse } from './openapi-contract';

export interface Listening {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves an app on an ephemeral localhost port: tests talk real HTTP to it. Every response of
 * a meterflow API app is checked against the OpenAPI document (./openapi-contract.ts); pass
 * `{ openApi: false }` for an app that is not the API.
 */
export function listen(app: Express, options: { openApi?: boolean } = {}): Promise<Listening> {
  const server = createServer(app);
  if (options.openApi !== false) server.prependListener('request', checkResponse);
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
