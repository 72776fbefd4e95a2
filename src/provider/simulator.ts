import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, open, readFile, truncate, type FileHandle } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import express, { type ErrorRequestHandler, type Express, type Request, type Response } from 'express';
import { pino, type Logger } from 'pino';
import { z, type ZodError } from 'zod';
import { isCurrency } from '../domain/currencies';
import { describeIssues, validationIssues } from '../domain/validation-issues';
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

/** The 400 the API answers for invalid input, naming every offending field. */
function sendValidationProblem(res: Response, error: ZodError, where: 'body' | 'query'): void {
  const errors = validationIssues(error);
  res
    .status(400)
    .type('application/problem+json')
    .json({
      errors,
      type: '/problems/validation_failed',
      title: 'The request is not valid',
      status: 400,
      detail: describeIssues(errors, where),
    });
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

/** The saved charges, in memory and, with a state file, on disk. */
class Ledger {
  readonly charges: ProviderCharge[] = [];
  private readonly byId = new Map<string, ProviderCharge>();
  private readonly byKey = new Map<string, Saved>();

  private constructor(private readonly file: FileHandle | undefined) {}

  static async open(stateFile: string | undefined, logger: Logger): Promise<Ledger> {
    if (!stateFile) return new Ledger(undefined);
    await mkdir(path.dirname(stateFile), { recursive: true });
    const saved = await loadState(stateFile, logger);
    const ledger = new Ledger(await open(stateFile, 'a'));
    for (const entry of saved) ledger.remember(entry);
    logger.info({ file: stateFile, charges: ledger.charges.length }, 'provider state loaded');
    return ledger;
  }

  charge(id: string): ProviderCharge | undefined {
    return this.byId.get(id);
  }

  underKey(key: string): Saved | undefined {
    return this.byKey.get(key);
  }

  /** Written before it is remembered or answered: a failed write leaves no charge behind. */
  async save(saved: Saved): Promise<void> {
    await this.file?.appendFile(`${JSON.stringify(saved)}\n`);
    this.remember(saved);
  }

  /** Waits for a write still in progress. */
  async close(): Promise<void> {
    await this.file?.close();
  }

  private remember(saved: Saved): void {
    this.charges.push(saved.charge);
    this.byId.set(saved.charge.id, saved.charge);
    this.byKey.set(saved.charge.idempotencyKey, saved);
  }
}

/** The faults to inject: queued ones first, in order; otherwise one drawn at the configured rates. */
class Faults {
  private queued: QueuedFault[] = [];

  constructor(
    private readonly rates: FaultRates,
    private readonly random: () => number,
  ) {}

  add(fault: QueuedFault): void {
    this.queued.push(fault);
  }

  clear(): void {
    this.queued = [];
  }

  next(params: ChargeParams): { kind: FaultKind; declineCode?: string } | undefined {
    const queued = this.queued.find((f) => matches(f, params));
    if (queued) {
      queued.times -= 1;
      if (queued.times === 0) this.queued = this.queued.filter((f) => f !== queued);
      return { kind: queued.fault, ...(queued.declineCode ? { declineCode: queued.declineCode } : {}) };
    }
    if (!faultKinds.some((k) => (this.rates[k] ?? 0) > 0)) return undefined;
    let draw = this.random();
    for (const kind of faultKinds) {
      draw -= this.rates[kind] ?? 0;
      if (draw < 0) return { kind };
    }
    return undefined;
  }
}

/** Runs each call after every earlier call under the same key has settled. */
class PerKeyQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(key) ?? Promise.resolve()).then(fn);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => this.tails.get(key) === tail && this.tails.delete(key));
    return result;
  }
}

/** Charges with Stripe's idempotency: one execution per key, serialized, replayed from the ledger. */
class ChargeDesk {
  private readonly queue = new PerKeyQueue();

  constructor(
    private readonly ledger: Ledger,
    private readonly faults: Faults,
    private readonly logger: Logger,
  ) {}

  charge(key: string, params: ChargeParams): Promise<Outcome> {
    return this.queue.run(key, () => this.execute(key, params));
  }

  private async execute(key: string, params: ChargeParams): Promise<Outcome> {
    const saved = this.ledger.underKey(key);
    if (saved) return sameParams(saved.params, params) ? { kind: 'charge', charge: saved.charge, replayed: true } : { kind: 'key_reuse' };
    const fault = this.faults.next(params);
    if (fault) this.logger.info({ fault: fault.kind, idempotencyKey: key, invoiceId: params.invoiceId }, 'injecting a fault');
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
    await this.ledger.save({ params, charge });
    this.logger.info(
      { chargeId: charge.id, idempotencyKey: key, status: charge.status, amountMinor: charge.amountMinor, currency: charge.currency },
      'charge executed',
    );
    return fault?.kind === 'ambiguous' ? { kind: 'ambiguous' } : { kind: 'charge', charge, replayed: false };
  }
}

export async function startProviderSimulator(opts: ProviderSimulatorOptions): Promise<ProviderSimulator> {
  const host = opts.host ?? '127.0.0.1';
  const logger = opts.logger ?? pino({ level: 'silent' });
  const faults = new Faults(FaultRatesSchema.parse(opts.faultRates ?? {}), opts.random ?? Math.random);
  const ledger = await Ledger.open(opts.stateFile, logger);
  const app = simulatorApp(new ChargeDesk(ledger, faults, logger), ledger, faults, logger);

  const server = createServer(app);
  server.listen(opts.port, host);
  try {
    await once(server, 'listening');
  } catch (err) {
    await ledger.close();
    throw err;
  }
  const { port } = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  async function shutdown(): Promise<void> {
    const closed = new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    // Held (timeout) requests would keep the server open forever.
    server.closeAllConnections();
    await closed;
    await ledger.close();
  }

  return {
    url: `http://${host}:${port}`,
    // Idempotent: a test's finally and a shutdown hook may both close it.
    close: () => (closing ??= shutdown()),
  };
}

function simulatorApp(desk: ChargeDesk, ledger: Ledger, faults: Faults, logger: Logger): Express {
  const app = express();
  app.use(express.json({ limit: '64kb' }));

  app.get('/healthz', (_req, res) => void res.json({ status: 'ok' }));

  app.post('/v1/charges', (req, res) => createCharge(desk, req, res));

  app.get('/v1/charges', (req, res) => {
    const query = ListQuerySchema.safeParse(req.query);
    if (!query.success) return sendValidationProblem(res, query.error, 'query');
    const { invoiceId, customerId } = query.data;
    const data = ledger.charges.filter(
      (c) => (invoiceId === undefined || c.invoiceId === invoiceId) && (customerId === undefined || c.customerId === customerId),
    );
    res.json({ data });
  });

  app.get('/v1/charges/:id', (req, res) => {
    const charge = ledger.charge(req.params.id);
    if (!charge) return sendProblem(res, 404, 'not_found', `No charge ${req.params.id}.`);
    res.json(charge);
  });

  app.post('/_sim/faults', (req, res) => {
    const parsed = FaultSchema.safeParse(req.body);
    if (!parsed.success) return sendValidationProblem(res, parsed.error, 'body');
    faults.add(parsed.data);
    res.status(201).json(parsed.data);
  });

  app.delete('/_sim/faults', (_req, res) => {
    faults.clear();
    res.status(204).end();
  });

  app.use((req, res) => sendProblem(res, 404, 'not_found', `No route for ${req.method} ${req.path}.`));
  app.use(errorHandler(logger));
  return app;
}

/** POST /v1/charges: charges once per Idempotency-Key and answers as the outcome says. */
async function createCharge(desk: ChargeDesk, req: Request, res: Response): Promise<void> {
  const key = req.get('idempotency-key');
  if (!key || key.length > MAX_KEY_LENGTH) {
    return sendProblem(res, 400, 'missing_idempotency_key', `An Idempotency-Key header of 1 to ${MAX_KEY_LENGTH} characters is required.`);
  }
  const parsed = ChargeParamsSchema.safeParse(req.body);
  if (!parsed.success) return sendValidationProblem(res, parsed.error, 'body');
  const outcome = await desk.charge(key, parsed.data);
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
}

function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, _req, res, next) => {
    if (res.headersSent) return next(err);
    const type = typeof err === 'object' && err !== null && 'type' in err ? (err as { type: unknown }).type : undefined;
    if (type === 'entity.parse.failed') return sendProblem(res, 400, 'malformed_json', 'The request body is not valid JSON.');
    if (type === 'entity.too.large') return sendProblem(res, 413, 'payload_too_large', 'The request body is too large.');
    logger.error({ err }, 'provider simulator failed');
    sendProblem(res, 500, 'internal_error', 'The provider failed; nothing was charged.');
  };
}
