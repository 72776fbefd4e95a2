import { Router } from 'express';
import swaggerUi from 'swagger-ui-express';
import { buildOpenApiDocument } from '../openapi';
import { ProblemError, problemCatalog, problemTypeUri, type ProblemCode } from '../problem';

/** The OpenAPI document (generated from the route schemas), its browser, and the problem types. */
export function docsRouter(): Router {
  const router = Router();
  const document = buildOpenApiDocument();
  router.get('/openapi.json', (_req, res) => {
    res.json(document);
  });
  router.use('/docs', swaggerUi.serve, swaggerUi.setup(undefined, { swaggerOptions: { url: '/openapi.json' } }));
  router.get('/problems', (_req, res) => {
    res.json(Object.entries(problemCatalog).map(([code, p]) => ({ type: problemTypeUri(code as ProblemCode), ...p })));
  });
  router.get('/problems/:code', (req, res) => {
    const code = req.params.code;
    if (!Object.hasOwn(problemCatalog, code)) throw new ProblemError('not_found', `No problem type named "${code}".`);
    res.json({ type: problemTypeUri(code as ProblemCode), ...problemCatalog[code as ProblemCode] });
  });
  return router;
}
