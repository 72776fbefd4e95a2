import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, open, readFile, truncate, type FileHandle } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import express, { type ErrorRequestHandler, type Response } from 'express';
import { pino, type Logger } from 'pino';
import { z } from 'zod';
import { problemFromZod } from '../api/problem';
import { isCurrency } from '../domain/currencies';
import { ProviderChargeSchema, type ProviderCharge } from './payment-provider';

/*
 * A local, Stripe-like payment provider: a real HTTP service, so charges cross a network boundary
 * with its failure modes, which tests inject deterministically (POST /_sim/faults) and demos draw
 * at random (faultRates).
 *
 * Idempotency as Stripe has it: the first request under a key executes and its result is saved;
 * the same key with the same parameters replays that result (Idempotent-Replayed: true) and never
 * charges again; with other parameters it is a 409. Requests under one key are serialized, so
 * concurrent duplicates cannot both charge. Replays and 409s are answered from the saved record
 * and consume no fault: faults hit requests that would execute.
 *
 * Faults, consumed in order by matching requests:
 * - `5xx`: 503 without executing or saving; a retry under the same key can succeed.
 * - `timeout`: the request is held without executing and never answered (nothing saved).
 * - `ambiguous`: executes and saves a succeeded charge, then drops the connection unanswered;
 *   a retry under the same key gets the saved success.
 * - `decline`: saves and answers a declined charge (402); the same key replays the decline.
 */

export const faultKinds = ['decline', 'timeout', '5xx', 'ambiguous'] as const;
export type FaultKind = (typeof faultKinds)[number];

const probability = z.number().min(0).max(1);

/** Probabilities of each fault per executing request; at most one fault is drawn per request. */
export const FaultRatesSchema = z
  .strictObject({
    decline: probability.optional(),
    timeout: probability.optional(),
    '5xx': probability.optional(),
    ambiguous: probability.optional(),
  })
  .refine((rates) => Object.values(rates).reduce((sum: number, p) => sum + (p ?? 0), 0) <= 1, 'the fault rates must add up to at most 1');
export type FaultRates = z.infer<typeof FaultRatesSchema>;

const ChargeParamsSchema = z.strictObject({
  customerId: z.string().min(1).max(255),
  invoiceId: z.string().min(1).max(255),
  amountMinor: z.string().regex(/^[1-9]\d{0,30}$/, 'expected a positive integer string of minor units, e.g. "1999"'),
  currency: z.string().refine(isCurrency, 'expected an active ISO 4217 code in upper case, e.g. "USD"'),
  description: z.string().max(1000).optional(),
});
type ChargeParams = z.infer<typeof ChargeParamsSchema>;

const FaultSchema = z.strictObject({
  match: z.strictObject({ customerId: z.string().min(1).optional(), invoiceId: z.string().min(1).optional() }).default({}),
  fault: z.enum(faultKinds),
  times: z.number().int().min(1).max(10_000).default(1),
  declineCode: z.string().min(1).max(100).optional(),
});
type QueuedFault = z.infer<typeof FaultSchema>;

const ListQuerySchema = z.object({ invoiceId: z.string().min(1).optional(), customerId: z.string().min(1).optional() });

/** One line of the state file: what the key was first used with, and the charge it produced. */
const SavedSchema = z.object({
  params: ChargeParamsSchema,
  charge: ProviderChargeSchema,
});
type Saved = z.infer<typeof SavedSchema>;

const MAX_KEY_LENGTH = 255;
const DEFAULT_DECLINE_CODE = 'generic_decline';

export interface ProviderSimulatorOptions {
  /** 0 picks a free port; `url` tells which. */
  port: number;
  host?: string;
  /** NDJSON file of saved charges, replayed on start; without it, state lives in memory. */
  stateFile?: string;
  logger?: Logger;
  faultRates?: FaultRates;
  /** Drawn for random faults; injected so tests can script it. */
  random?: () => number;
}

export interface ProviderSimulator {
  url: string;
  close(): Promise<void>;
}

type Outcome =
  { kind: 'charge'; charge: ProviderCharge; replayed: boolean } | { kind: 'key_reuse' } | { kind: '5xx' | 'timeout' | 'ambiguous' };

function sendProblem(res: Response, status: number, code: string, detail: string): void {
  res
    .status(status)
    .type('application/problem+json')
    .json({ type: `/problems/${code}`, status, detail });
}

const sameParams = (a: ChargeParams, b: ChargeParams) =>
  a.customerId === b.customerId &&
  a.invoiceId === b.invoiceId &&
  a.amountMinor === b.amountMinor &&
  a.currency === b.currency &&
  a.description === b.description;

const matches = (fault: QueuedFault, params: ChargeParams) =>
  (fault.match.customerId === undefined || fault.match.customerId === params.customerId) &&
  (fault.match.invoiceId === undefined || fault.match.invoiceId === params.invoiceId);

/** Refuses a bad line: skipping it would forget an idempotency key, and a retry under it would charge twice. */
function parseSaved(line: string, where: string): Saved {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    throw new Error(`${where} is not a saved charge: not JSON`);
  }
  const parsed = SavedSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${where} is not a saved charge: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/**
 * Reads the saved charges. Each line is written with its newline in one append, so a last line
 * without one was torn by a crash before its charge was answered: it is cut off (the client saw
 * no answer and retries) so that the next append starts on a line of its own.
 */
async function loadState(file: string, logger: Logger): Promise<Saved[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  if (complete.length < text.length) {
    logger.warn({ file }, 'dropping a torn last line of the provider state file');
    await truncate(file, Buffer.byteLength(complete));
  }
  return complete
    .split('\n')
    .filter((line) => line !== '')
    .map((line, i) => parseSaved(line, `${file}:${i + 1}`));
}

export async function startProviderSimulator(opts: ProviderSimulatorOptions): Promise<ProviderSimulator> {
  const host = opts.host ?? '127.0.0.1';
  const logger = opts.logger ?? pino({ level: 'silent' });
  const rates = FaultRatesSchema.parse(opts.faultRates ?? {});
  const random = opts.random ?? Math.random;

  const charges: ProviderCharge[] = [];
  const byId = new Map<string, ProviderCharge>();
  const byKey = new Map<string, Saved>();
  const remember = (saved: Saved) => {
    charges.push(saved.charge);
    byId.set(saved.charge.id, saved.charge);
    byKey.set(saved.charge.idempotencyKey, saved);
  };

  let state: FileHandle | undefined;
  if (opts.stateFile) {
    await mkdir(path.dirname(opts.stateFile), { recursive: true });
    for (const saved of await loadState(opts.stateFile, logger)) remember(saved);
    state = await open(opts.stateFile, 'a');
    logger.info({ file: opts.stateFile, charges: charges.length }, 'provider state loaded');
  }

  /** Written before it is remembered or answered: a failed write leaves no charge behind. */
  async function save(saved: Saved): Promise<void> {
    await state?.appendFile(`${JSON.stringify(saved)}\n`);
    remember(saved);
  }

  let faults: QueuedFault[] = [];
  function nextFault(params: ChargeParams): { kind: FaultKind; declineCode?: string } | undefined {
    const queued = faults.find((f) => matches(f, params));
    if (queued) {
      queued.times -= 1;
      if (queued.times === 0) faults = faults.filter((f) => f !== queued);
      return { kind: queued.fault, ...(queued.declineCode ? { declineCode: queued.declineCode } : {}) };
    }
    if (!faultKinds.some((k) => (rates[k] ?? 0) > 0)) return undefined;
    let draw = random();
    for (const kind of faultKinds) {
      draw -= rates[kind] ?? 0;
      if (draw < 0) return { kind };
    }
    return undefined;
  }

  const tails = new Map<string, Promise<unknown>>();
  /** Runs fn after every earlier call under the same key has settled. */
  function serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const result = (tails.get(key) ?? Promise.resolve()).then(fn);
    const tail = result.catch(() => undefined);
    tails.set(key, tail);
    void tail.then(() => tails.get(key) === tail && tails.delete(key));
    return result;
  }

  async function execute(key: string, params: ChargeParams): Promise<Outcome> {
    const saved = byKey.get(key);
    if (saved) return sameParams(saved.params, params) ? { kind: 'charge', charge: saved.charge, replayed: true } : { kind: 'key_reuse' };
    const fault = nextFault(params);
    if (fault) logger.info({ fault: fault.kind, idempotencyKey: key, invoiceId: params.invoiceId }, 'injecting a fault');
    if (fault?.kind === '5xx' || fault?.kind === 'timeout') return { kind: fault.kind };
    const declined = fault?.kind === 'decline';
    const charge: ProviderCharge = {
      id: `ch_${randomUUID().replaceAll('-', '')}`,
      idempotencyKey: key,
      customerId: params.customerId,
      invoiceId: params.invoiceId,
      amountMinor: params.amountMinor,
      currency: params.currency,
      status: declined ? 'declined' : 'succeeded',
      ...(declined ? { declineCode: fault.declineCode ?? DEFAULT_DECLINE_CODE } : {}),
      createdAt: new Date().toISOString(),
    };
    await save({ params, charge });
    logger.info(
      { chargeId: charge.id, idempotencyKey: key, status: charge.status, amountMinor: charge.amountMinor, currency: charge.currency },
      'charge executed',
    );
    return fault?.kind === 'ambiguous' ? { kind: 'ambiguous' } : { kind: 'charge', charge, replayed: false };
  }

  const app = express();
  app.use(express.json({ limit: '64kb' }));

  app.get('/healthz', (_req, res) => void res.json({ status: 'ok' }));

  app.post('/v1/charges', async (req, res) => {
    const key = req.get('idempotency-key');
    if (!key || key.length > MAX_KEY_LENGTH) {
      return sendProblem(
        res,
        400,
        'missing_idempotency_key',
        `An Idempotency-Key header of 1 to ${MAX_KEY_LENGTH} characters is required.`,
      );
    }
    const parsed = ChargeParamsSchema.safeParse(req.body);
    if (!parsed.success) return void res.status(400).type('application/problem+json').json(problemFromZod(parsed.error).toBody());
    const outcome = await serialized(key, () => execute(key, parsed.data));
    switch (outcome.kind) {
      case 'charge':
        if (outcome.replayed) res.set('Idempotent-Replayed', 'true');
        return void res.status(outcome.charge.status === 'declined' ? 402 : 200).json(outcome.charge);
      case 'key_reuse':
        return sendProblem(res, 409, 'idempotency_key_reuse', `Idempotency key ${key} was already used with other parameters.`);
      case '5xx':
        return sendProblem(res, 503, 'unavailable', 'Injected fault: the provider is unavailable; nothing was charged.');
      case 'timeout':
        // Left unanswered: the client gives up, or close() drops the connection.
        return;
      case 'ambiguous':
        req.socket.destroy();
        return;
    }
  });

  app.get('/v1/charges', (req, res) => {
    const query = ListQuerySchema.safeParse(req.query);
    if (!query.success) return void res.status(400).type('application/problem+json').json(problemFromZod(query.error, 'query').toBody());
    const { invoiceId, customerId } = query.data;
    const data = charges.filter(
      (c) => (invoiceId === undefined || c.invoiceId === invoiceId) && (customerId === undefined || c.customerId === customerId),
    );
    res.json({ data });
  });

  app.get('/v1/charges/:id', (req, res) => {
    const charge = byId.get(req.params.id);
    if (!charge) return sendProblem(res, 404, 'not_found', `No charge ${req.params.id}.`);
    res.json(charge);
  });

  app.post('/_sim/faults', (req, res) => {
    const parsed = FaultSchema.safeParse(req.body);
    if (!parsed.success) return void res.status(400).type('application/problem+json').json(problemFromZod(parsed.error).toBody());
    faults.push(parsed.data);
    res.status(201).json(parsed.data);
  });

  app.delete('/_sim/faults', (_req, res) => {
    faults = [];
    res.status(204).end();
  });

  app.use((req, res) => sendProblem(res, 404, 'not_found', `No route for ${req.method} ${req.path}.`));

  const errorHandler: ErrorRequestHandler = (err, _req, res, next) => {
    if (res.headersSent) return next(err);
    const type = typeof err === 'object' && err !== null && 'type' in err ? (err as { type: unknown }).type : undefined;
    if (type === 'entity.parse.failed') return sendProblem(res, 400, 'malformed_json', 'The request body is not valid JSON.');
    if (type === 'entity.too.large') return sendProblem(res, 413, 'payload_too_large', 'The request body is too large.');
    logger.error({ err }, 'provider simulator failed');
    sendProblem(res, 500, 'internal_error', 'The provider failed; nothing was charged.');
  };
  app.use(errorHandler);

  const server = createServer(app);
  server.listen(opts.port, host);
  try {
    await once(server, 'listening');
  } catch (err) {
    await state?.close();
    throw err;
  }
  const { port } = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  async function shutdown(): Promise<void> {
    const closed = new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    // Held (timeout) requests would keep the server open forever.
    server.closeAllConnections();
    await closed;
    // Waits for a write still in progress.
    await state?.close();
  }

  return {
    url: `http://${host}:${port}`,
    // Idempotent: a test's finally and a shutdown hook may both close it.
    close: () => (closing ??= shutdown()),
  };
}
