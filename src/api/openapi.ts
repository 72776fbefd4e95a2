import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { problemCatalog, problemTypeUri, type ProblemCode } from './problem';

/**
 * Every route file registers its paths here, next to its zod schemas, so the document is
 * generated from the same schemas that validate requests. A route lists the statuses that are
 * its own (404, 409, 422...); those every operation of a kind can return (401 and 429 from
 * authentication, 503 when PostgreSQL or Temporal is unreachable, 400/413/415 from the body
 * parser and input validation) are added centrally by `buildOpenApiDocument`, so no route can
 * forget them.
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

/** The problem types the API answers with this status, as a response description. */
function problemDescription(status: number): string {
  const kinds = (Object.keys(problemCatalog) as ProblemCode[]).filter((code) => problemCatalog[code].status === status);
  return kinds.length
    ? kinds.map((code) => `${problemCatalog[code].title} (${problemTypeUri(code)})`).join('; or ')
    : `Problem (${status})`;
}

/** Standard problem+json responses to spread into a path's `responses`. */
export function problemResponses(...statuses: number[]) {
  return Object.fromEntries(
    statuses.map((s) => [s, { description: problemDescription(s), content: { 'application/problem+json': { schema: ProblemSchema } } }]),
  );
}

export const apiKeyAuth = registry.registerComponent('securitySchemes', 'ApiKey', {
  type: 'http',
  scheme: 'bearer',
  description: 'An API key, sent as `Authorization: Bearer <key>`.',
});

type OpenApiDocument = ReturnType<OpenApiGeneratorV31['generateDocument']>;
type PathItem = NonNullable<OpenApiDocument['paths']>[string];
type Operation = NonNullable<PathItem['get']>;
type Responses = NonNullable<Operation['responses']>;
type Headers = Record<string, { description: string; required?: boolean; schema: { type: 'string' | 'integer' } }>;

const methods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

const rateLimitHeaders: Headers = {
  RateLimit: { description: 'What is left of each rate-limit window of the key (IETF RateLimit fields)', schema: { type: 'string' } },
  'RateLimit-Policy': { description: "The key's rate-limit windows", schema: { type: 'string' } },
};

const retryAfter: Headers = {
  'Retry-After': { description: 'Seconds until a retry can succeed', required: true, schema: { type: 'integer' } },
};

/** Statuses an operation can return by what it is, not by what it does. */
function commonStatuses(op: Operation): { status: number; headers?: Headers }[] {
  const statuses: { status: number; headers?: Headers }[] = [];
  const hasInput = op.parameters?.some((p) => 'in' in p && (p.in === 'path' || p.in === 'query'));
  if (op.requestBody) statuses.push({ status: 400 }, { status: 413 }, { status: 415 });
  else if (hasInput) statuses.push({ status: 400 });
  if (op.security?.length) {
    statuses.push(
      {
        status: 401,
        headers: { 'WWW-Authenticate': { description: 'The Bearer challenge (RFC 6750)', required: true, schema: { type: 'string' } } },
      },
      { status: 429, headers: { ...retryAfter, ...rateLimitHeaders } },
      // Verifying a key the process has not cached needs PostgreSQL, and every /v1 route stands on
      // PostgreSQL or Temporal: losing either answers 503, never 500.
      { status: 503, headers: retryAfter },
    );
  }
  return statuses;
}

/**
 * Adds to each operation the statuses of its kind: a route's own entry for a status wins, and
 * gains the kind's headers. Authenticated successes also carry the rate-limit headers.
 */
function addCommonResponses(op: Operation): void {
  const responses: Responses = (op.responses ??= {});
  for (const { status, headers } of commonStatuses(op)) {
    const own = responses[status] as { headers?: object } | undefined;
    const base = own ?? {
      description: problemDescription(status),
      content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
    };
    responses[status] = { ...base, ...(headers || own?.headers ? { headers: { ...headers, ...own?.headers } } : {}) };
  }
  if (!op.security?.length) return;
  for (const [status, response] of Object.entries(responses)) {
    if (!status.startsWith('2') || '$ref' in response) continue;
    response.headers = { ...rateLimitHeaders, ...response.headers };
  }
}

/** Whether `value` is a plain object or array, whose members may hold schemas. */
const isContainer = (value: unknown): value is object =>
  Array.isArray(value) || (typeof value === 'object' && value !== null && [Object.prototype, null].includes(Object.getPrototypeOf(value)));

/**
 * Refuses two different zod schemas under one `.meta({ id })`. The generator would silently
 * give every use of the id the shape of whichever schema it met first, so responses of the other
 * would be documented with the wrong shape.
 */
export function assertUniqueSchemaIds(definitions: unknown): void {
  const byId = new Map<string, z.core.$ZodType>();
  const seen = new Set<object>();
  const visit = (value: unknown): void => {
    if (typeof value !== 'object' || value === null || seen.has(value)) return;
    seen.add(value);
    if (value instanceof z.core.$ZodType) {
      const id = z.globalRegistry.get(value)?.id;
      const other = id === undefined ? undefined : byId.get(id);
      if (id !== undefined && other !== undefined && other !== value) {
        throw new Error(`OpenAPI schema id "${id}" is given to two different schemas; give each its own id.`);
      }
      if (id !== undefined) byId.set(id, value);
      const def = value._zod.def as unknown as Record<string, unknown>;
      for (const [key, member] of Object.entries(def))
        visit(key === 'getter' && typeof member === 'function' ? (member as () => unknown)() : member);
      return;
    }
    if (isContainer(value)) for (const member of Object.values(value)) visit(member);
  };
  visit(definitions);
}

export function buildOpenApiDocument(): OpenApiDocument {
  assertUniqueSchemaIds(registry.definitions);
  const document = new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'meterflow API',
      version: '0.1.0',
      description:
        'Usage metering, pricing and billing. Errors are RFC 9457 application/problem+json. Any other path or method ' +
        'answers 404 (/problems/not_found).',
    },
    servers: [{ url: '/' }],
  });
  // Health and every route use ProblemSchema, so the generator always emits it.
  if (!document.components?.schemas?.Problem) throw new Error('The Problem schema is missing from the OpenAPI components.');
  for (const item of Object.values(document.paths ?? {})) {
    for (const method of methods) {
      const op = item[method];
      if (op) addCommonResponses(op);
    }
  }
  return document;
}

/** An OpenAPI request or response body of JSON described by `schema`. */
export const jsonContent = <T extends z.ZodType>(schema: T) => ({ content: { 'application/json': { schema } } });
