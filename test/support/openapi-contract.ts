/**
 * Holds the API to its OpenAPI document: every response an API server started by `listen`
 * (./http.ts) sends is checked against the document the API serves at /openapi.json. The status
 * must be documented for the operation, the content type must be one documented for that status,
 * required headers must be present, and a JSON body must validate against the response schema
 * (Ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses). A violation fails the test during which the
 * response was sent; one sent outside any test (in a hook, or by a forked API process) fails
 * the process, which fails the test file (or `startApiProcess`'s stop).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach } from 'node:test';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { buildOpenApiDocument } from '../../src/api/openapi';
// The composition imports every router, and so registers every path of the served document.
import '../../src/main/api-app';

export interface Exchange {
  method: string;
  /** The request target as sent: path and query. */
  url: string;
  status: number;
  headers: Record<string, number | string | string[] | undefined>;
  body: Buffer;
}

type Document = ReturnType<typeof buildOpenApiDocument>;
type Operation = NonNullable<NonNullable<Document['paths']>[string]['get']>;
type Response = { description: string; content?: Record<string, { schema?: unknown }>; headers?: Record<string, { required?: boolean }> };

const methods = ['get', 'put', 'post', 'delete', 'patch'] as const;

/** Swagger UI's page and assets: the browser for the document, not part of the API it describes. */
const UNDOCUMENTED = /^\/docs(\/|$)/;

/**
 * What the app answers outside the documented operations: its catch-all 404, or a refusal by
 * app-wide middleware that runs before routing (body parser 400/413/415, /v1 authentication
 * 401/429). The document's description states the 404.
 */
const FALLBACK_STATUSES = new Set([400, 401, 404, 413, 415, 429]);

const DOCUMENT_ID = 'urn:meterflow:openapi';

/** A JSON Pointer segment (RFC 6901) inside a URI fragment. */
const segment = (s: string) => encodeURIComponent(s.replaceAll('~', '~0').replaceAll('/', '~1'));

const mediaTypeOf = (contentType: string | undefined) => contentType?.split(';')[0]!.trim().toLowerCase() ?? '';
const isJson = (mediaType: string) => mediaType === 'application/json' || mediaType.endsWith('+json');

export class OpenApiContract {
  private readonly ajv = new Ajv2020({ allErrors: true, strict: true });
  private readonly validators = new Map<string, ValidateFunction>();
  /** Path templates as patterns, concrete before templated (OpenAPI's matching rule). */
  private readonly templates: { template: string; pattern: RegExp; params: number }[];

  constructor(private readonly document: Document) {
    addFormats.default(this.ajv);
    // The OpenAPI Object's fields around the schemas, and OpenAPI's own schema keywords: not JSON Schema's.
    this.ajv.addVocabulary(['openapi', 'info', 'jsonSchemaDialect', 'servers', 'paths', 'webhooks', 'components', 'security', 'tags']);
    this.ajv.addVocabulary(['example', 'discriminator', 'xml', 'externalDocs']);
    this.ajv.addSchema(document as object, DOCUMENT_ID);
    this.templates = Object.entries(document.paths ?? {})
      .map(([template, item]) => {
        // A parameter marked `x-may-contain-slashes` (a run id like reconcile/2026-11-01T00:00:00.000Z/all) may span segments.
        const spanning = new Set(
          methods.flatMap((m) =>
            (item[m]?.parameters ?? [])
              .filter((p) => 'in' in p && p.in === 'path' && p['x-may-contain-slashes'] === true)
              .map((p) => ('name' in p ? p.name : '')),
          ),
        );
        const escaped = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
        return {
          template,
          pattern: new RegExp(`^${escaped.replace(/\{([^/}]+)\}/g, (_, name: string) => (spanning.has(name) ? '.+' : '[^/]+'))}$`),
          params: (template.match(/\{/g) ?? []).length + (spanning.size > 0 ? 0.5 : 0),
        };
      })
      // Of two templates with as many parameters that both match, the longer has more literal text
      // (/v1/invoices/{id}.pdf before /v1/invoices/{id}).
      .sort((a, b) => a.params - b.params || b.template.length - a.template.length);
  }

  /** Everything about `exchange` that the document does not allow; empty when it conforms. */
  violations(exchange: Exchange): string[] {
    const path = exchange.url.split('?')[0]!;
    if (UNDOCUMENTED.test(path)) return [];
    const method = exchange.method.toLowerCase();
    const what = `${exchange.method} ${path} → ${exchange.status}`;
    const template = this.templates.find((t) => t.pattern.test(path) && this.document.paths![t.template]![method as 'get'])?.template;
    const operation = template ? (this.document.paths![template]![method as 'get'] as Operation) : undefined;
    if (!template || !operation) {
      if (!FALLBACK_STATUSES.has(exchange.status))
        return [`${what}: no documented operation, and not the catch-all 404 or a refusal before routing`];
      return this.bodyViolations(what, exchange, 'application/problem+json', '#/components/schemas/Problem');
    }
    const responses = operation.responses as Record<string, Response | undefined>;
    const statusKey = [String(exchange.status), `${String(exchange.status)[0]}XX`, 'default'].find((k) => responses[k]);
    if (!statusKey) return [`${what}: status not documented (documented: ${Object.keys(responses).join(', ')})`];
    const response = responses[statusKey]!;
    const problems: string[] = [];
    for (const [name, header] of Object.entries(response.headers ?? {})) {
      if (header.required && exchange.headers[name.toLowerCase()] === undefined)
        problems.push(`${what}: required header ${name} is missing`);
    }
    const mediaType = mediaTypeOf(exchange.headers['content-type'] as string | undefined);
    const content = response.content ?? {};
    if (Object.keys(content).length === 0) {
      if (exchange.body.length > 0) problems.push(`${what}: documented without a body, but has one (${mediaType || 'no content type'})`);
      return problems;
    }
    const documented = Object.keys(content).find(
      (m) => m === mediaType || (m.endsWith('/*') && mediaType.startsWith(m.slice(0, -1))) || m === '*/*',
    );
    if (!documented)
      return [
        ...problems,
        `${what}: content type ${mediaType || '(none)'} is not documented (documented: ${Object.keys(content).join(', ')})`,
      ];
    if (method === 'head' || content[documented]!.schema === undefined) return problems;
    const pointer = `#/paths/${segment(template)}/${method}/responses/${statusKey}/content/${segment(documented)}/schema`;
    return [...problems, ...this.bodyViolations(what, exchange, documented, pointer)];
  }

  private bodyViolations(what: string, exchange: Exchange, expectedMediaType: string, pointer: string): string[] {
    const mediaType = mediaTypeOf(exchange.headers['content-type'] as string | undefined);
    if (mediaType !== expectedMediaType && !expectedMediaType.endsWith('/*'))
      return [`${what}: content type ${mediaType || '(none)'}, expected ${expectedMediaType}`];
    let body: unknown;
    if (isJson(mediaType)) {
      try {
        body = JSON.parse(exchange.body.toString('utf8'));
      } catch {
        return [`${what}: the body is not JSON: ${exchange.body.toString('utf8').slice(0, 200)}`];
      }
    } else {
      body = exchange.body.toString('utf8');
    }
    const validate = this.validator(pointer);
    if (validate(body)) return [];
    return [`${what}: the body does not match the documented schema: ${this.ajv.errorsText(validate.errors, { dataVar: 'body' })}`];
  }

  private validator(pointer: string): ValidateFunction {
    let validate = this.validators.get(pointer);
    if (!validate) {
      validate = this.ajv.getSchema(`${DOCUMENT_ID}${pointer}`);
      if (!validate) throw new Error(`No schema at ${pointer} in the OpenAPI document`);
      this.validators.set(pointer, validate);
    }
    return validate;
  }
}

let contract: OpenApiContract | undefined;
/** Built on first use, once every module that registers paths has been loaded. */
const theContract = () => (contract ??= new OpenApiContract(buildOpenApiDocument()));

const pending: string[] = [];

function bodyChunk(chunk: unknown, encoding: unknown): Buffer | undefined {
  if (typeof chunk === 'string') return Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk);
  return undefined;
}

/**
 * A server 'request' listener to run before the app: keeps a copy of what the response sends
 * and checks it against the document just before its last byte leaves, so a violation is on
 * record before the client can see the response.
 */
export function checkResponse(req: IncomingMessage, res: ServerResponse): void {
  const method = req.method ?? 'GET';
  const url = req.url ?? '/';
  const chunks: Buffer[] = [];
  const write = res.write;
  const end = res.end;
  res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    const buffer = bodyChunk(chunk, rest[0]);
    if (buffer) chunks.push(buffer);
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof res.write;
  res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
    res.end = end;
    const buffer = bodyChunk(chunk, rest[0]);
    if (buffer) chunks.push(buffer);
    try {
      pending.push(
        ...theContract().violations({ method, url, status: res.statusCode, headers: res.getHeaders(), body: Buffer.concat(chunks) }),
      );
    } catch (err) {
      pending.push(
        `${method} ${url}: could not be checked against the OpenAPI document: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    return (end as (...args: unknown[]) => ServerResponse).call(this, chunk, ...rest);
  } as typeof res.end;
}

/** Throws, once, the violations recorded since the last call. */
export function assertResponsesConform(): void {
  if (pending.length === 0) return;
  const found = pending.splice(0);
  throw new Error(`${found.length} response(s) do not conform to the OpenAPI document:\n  ${found.join('\n  ')}`);
}

// Only in a test file's process: other processes (a forked API server) have no test to fail.
if (process.env.NODE_TEST_CONTEXT) afterEach(assertResponsesConform);
process.on('exit', () => {
  if (pending.length === 0) return;
  console.error(`${pending.length} response(s) do not conform to the OpenAPI document:\n  ${pending.join('\n  ')}`);
  process.exitCode = 1;
});
