import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';

/**
 * Every route file registers its paths here, next to its zod schemas, so the document is
 * generated from the same schemas that validate requests.
 */
export const registry = new OpenAPIRegistry();

export const ProblemSchema = z
  .object({
    type: z.string().meta({ example: '/problems/validation_failed' }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    instance: z.string().optional(),
    errors: z
      .array(z.object({ pointer: z.string(), detail: z.string() }))
      .optional()
      .meta({ description: 'For validation problems: each offending field as a JSON Pointer.' }),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details' });

/** Standard problem+json responses to spread into a path's `responses`. */
export function problemResponses(...statuses: number[]) {
  return Object.fromEntries(
    statuses.map((s) => [
      s,
      { description: `Problem (${s})`, content: { 'application/problem+json': { schema: ProblemSchema } } },
    ]),
  );
}

export const apiKeyAuth = registry.registerComponent('securitySchemes', 'ApiKey', {
  type: 'http',
  scheme: 'bearer',
  description: 'An API key, sent as `Authorization: Bearer <key>`.',
});

export function buildOpenApiDocument() {
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'meterflow API',
      version: '0.1.0',
      description: 'Usage metering, pricing and billing. Errors are RFC 9457 application/problem+json.',
    },
    servers: [{ url: '/' }],
  });
}

/** An OpenAPI request or response body of JSON described by `schema`. */
export const jsonContent = <T extends z.ZodType>(schema: T) => ({ content: { 'application/json': { schema } } });
