import { Router } from 'express';
import swaggerUi from 'swagger-ui-express';
import { z } from 'zod';
import { Identifier } from '../../domain/edge-schemas';
import { buildOpenApiDocument, jsonContent, problemResponses, registry } from '../openapi';
import { ProblemError, parseRequest, problemCatalog, problemTypeUri, type ProblemCode } from '../problem';

const ProblemTypeSchema = z
  .object({
    type: z.string().meta({ example: '/problems/not_found' }),
    title: z.string(),
    status: z.number().int(),
  })
  .meta({ id: 'ProblemType', description: 'One kind of error: its stable type URI, title and HTTP status' });

const CodeParams = z.object({ code: Identifier });

const tags = ['operations'];
registry.registerPath({
  method: 'get',
  path: '/openapi.json',
  summary: 'This OpenAPI document',
  description: 'Generated from the schemas that validate requests. `/docs` shows it in a browser (Swagger UI).',
  tags,
  responses: {
    200: { description: 'OpenAPI 3.1', ...jsonContent(z.object({ openapi: z.string(), info: z.object({}), paths: z.object({}) })) },
  },
});
registry.registerPath({
  method: 'get',
  path: '/problems',
  summary: 'Every problem type the API answers with',
  tags,
  responses: { 200: { description: 'The closed set of problem types', ...jsonContent(z.array(ProblemTypeSchema)) } },
});
registry.registerPath({
  method: 'get',
  path: '/problems/{code}',
  summary: 'One problem type, at its type URI',
  tags,
  request: { params: CodeParams },
  responses: { 200: { description: 'The problem type', ...jsonContent(ProblemTypeSchema) }, ...problemResponses(404) },
});

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
    const { code } = parseRequest(CodeParams, req.params, 'params');
    if (!Object.hasOwn(problemCatalog, code)) throw new ProblemError('not_found', `No problem type named "${code}".`);
    res.json({ type: problemTypeUri(code as ProblemCode), ...problemCatalog[code as ProblemCode] });
  });
  return router;
}
