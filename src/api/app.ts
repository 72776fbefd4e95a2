import { randomUUID } from 'node:crypto';
import express, { type Express, type RequestHandler, type Router } from 'express';
import { pinoHttp } from 'pino-http';
import type { Logger } from 'pino';
import { z } from 'zod';
import { logLevelOf, notFoundHandler, problemHandler } from './error-handler';
import { ProblemError } from './problem';
import type { ApiMetrics } from './metrics';
import { docsRouter } from './routes/docs';
import { healthRouter, type ReadinessCheck } from './routes/health';
import { registry } from './openapi';

export interface AppDeps {
  logger: Logger;
  /** Named readiness probes for /readyz, e.g. Postgres and Temporal. */
  readiness: Record<string, ReadinessCheck>;
  /** Verifies the caller's API key and sets `req.principal`; refuses bad keys with 401. */
  authenticate: RequestHandler;
  /** Resource routers; each guards every route with `authorize` (src/api/authorization.ts). */
  routers: Router[];
  /** The process's metrics registry; other chapters (e.g. the ingest writer) register into it too. */
  metrics: ApiMetrics;
}

registry.registerPath({
  method: 'get',
  path: '/metrics',
  summary: 'Prometheus metrics of this process',
  tags: ['operations'],
  responses: { 200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: z.string() } } } },
});

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;
const JSON_TYPES = ['application/json', 'application/*+json'];

/** Every body this API reads is JSON: a body of another type is refused, not ignored as if absent. */
const refuseOtherBodies: RequestHandler = (req, _res, next) => {
  const length = Number(req.headers['content-length']);
  const hasContent = req.headers['transfer-encoding'] !== undefined || length > 0;
  if (hasContent && !req.is(JSON_TYPES)) {
    next(
      new ProblemError(
        'unsupported_media_type',
        `Send the request body as application/json (got ${req.headers['content-type'] ?? 'no content type'}).`,
      ),
    );
    return;
  }
  next();
};

export function createApp(deps: AppDeps): Express {
  const app = express();
  const { metrics } = deps;
  app.disable('x-powered-by');
  app.set('trust proxy', false);

  app.use(
    pinoHttp({
      logger: deps.logger,
      // Honour a caller's correlation id when it is sane; otherwise mint one.
      genReqId: (req, res) => {
        const incoming = req.headers['x-request-id'];
        const id = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      // By status (LOG_LEVEL=debug shows successes); a response that failed otherwise is an error.
      customLogLevel: (_req, res, err) => (err && res.statusCode !== 503 ? 'error' : logLevelOf(res.statusCode)),
      autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/metrics' },
    }),
  );
  app.use(metrics.middleware);
  // Non-strict: a valid JSON scalar reaches the route and gets a precise validation error.
  app.use(express.json({ limit: '5mb', strict: false, type: JSON_TYPES }));
  app.use(refuseOtherBodies);

  app.use(healthRouter(deps.readiness));
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.use(docsRouter());
  app.use('/v1', deps.authenticate);
  for (const router of deps.routers) app.use(router);

  app.use(notFoundHandler);
  app.use(problemHandler);
  return app;
}
