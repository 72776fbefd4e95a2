import { Router } from 'express';
import { z } from 'zod';
import { ProblemError } from '../problem';
import { problemResponses, registry } from '../openapi';

/** A readiness probe of one dependency: resolves when it answers. */
export type ReadinessCheck = () => Promise<unknown>;

const CHECK_TIMEOUT_MS = 2000;

const HealthSchema = z.object({ status: z.literal('ok') }).meta({ id: 'Health' });
const ReadySchema = z.object({ status: z.literal('ready'), checks: z.record(z.string(), z.literal('ok')) }).meta({ id: 'Readiness' });

registry.registerPath({
  method: 'get',
  path: '/healthz',
  summary: 'Liveness: the process serves HTTP',
  tags: ['operations'],
  responses: { 200: { description: 'Alive', content: { 'application/json': { schema: HealthSchema } } } },
});
registry.registerPath({
  method: 'get',
  path: '/readyz',
  summary: 'Readiness: Postgres and Temporal answer',
  tags: ['operations'],
  responses: {
    200: { description: 'Every dependency answered', content: { 'application/json': { schema: ReadySchema } } },
    ...problemResponses(503),
  },
});

function withTimeout(check: ReadinessCheck): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  return Promise.race([check(), timeout]).finally(() => clearTimeout(timer));
}

export function healthRouter(checks: Record<string, ReadinessCheck>): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (req, res) => {
    const names = Object.keys(checks);
    const results = await Promise.allSettled(names.map((name) => withTimeout(checks[name]!)));
    const failed = names.filter((_, i) => results[i]!.status === 'rejected');
    if (failed.length > 0) {
      const reasons = Object.fromEntries(
        failed.map((name) => {
          const r = results[names.indexOf(name)] as PromiseRejectedResult;
          return [name, r.reason instanceof Error ? r.reason.message : String(r.reason)];
        }),
      );
      req.log.warn({ reasons }, 'not ready');
      throw new ProblemError(
        'unavailable',
        `Not ready: ${failed.join(', ')} unreachable.`,
        { checks: Object.fromEntries(names.map((n) => [n, failed.includes(n) ? 'failed' : 'ok'])) },
        { 'Retry-After': '1' },
      );
    }
    res.json({ status: 'ready', checks: Object.fromEntries(names.map((n) => [n, 'ok'])) });
  });
  return router;
}
