import { createRequire } from 'node:module';
import path from 'node:path';
import { Router, type Response } from 'express';
import { z } from 'zod';
import { problemResponses, registry } from '../openapi';
import { parseRequest } from '../problem';

const require = createRequire(import.meta.url);
const own = (file: string) => path.join(import.meta.dirname, '../../portal/assets', file);

/**
 * Everything the page loads, from this server: its own script and styles, and uPlot (README,
 * "Customer portal", says why uPlot) from node_modules, so the page needs no CDN or network.
 */
const assets: Record<string, { file: string; type: string }> = {
  'portal.js': { file: own('portal.js'), type: 'text/javascript' },
  'portal.css': { file: own('portal.css'), type: 'text/css' },
  'uplot.js': { file: require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript' },
  'uplot.css': { file: require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css' },
};

const AssetParams = z.object({ file: z.enum(Object.keys(assets) as [string, ...string[]]) });

const tags = ['portal'];
registry.registerPath({
  method: 'get',
  path: '/portal',
  summary: 'The customer portal page (open the URL POST /v1/portal-sessions returns)',
  description:
    'A static page: it reads the session token from its URL fragment and calls this API with it as a bearer token, so every figure ' +
    'it shows is an API answer. Without a valid token it says the link expired or is invalid.',
  tags,
  responses: { 200: { description: 'The page', content: { 'text/html': { schema: z.string() } } } },
});
registry.registerPath({
  method: 'get',
  path: '/portal/assets/{file}',
  summary: "The portal page's script, styles and chart library",
  tags,
  request: { params: AssetParams },
  responses: {
    200: { description: 'The asset', content: { 'text/javascript': { schema: z.string() }, 'text/css': { schema: z.string() } } },
    ...problemResponses(400),
  },
});

/** Same-origin only: no inline script or style, no framing, nothing sent to or loaded from elsewhere. */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function send(res: Response, file: string, type: string): void {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.type(type).sendFile(file, { headers: { 'Cache-Control': 'no-cache' } });
}

/** The customer portal: one page and its assets, outside /v1 (the page itself holds no data). */
export function portalRouter(): Router {
  const router = Router();
  router.get('/portal', (_req, res) => send(res, own('portal.html'), 'text/html'));
  router.get('/portal/assets/:file', (req, res) => {
    const asset = assets[parseRequest(AssetParams, req.params, 'params').file]!;
    send(res, asset.file, asset.type);
  });
  return router;
}
