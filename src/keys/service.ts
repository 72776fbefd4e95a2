import type { Principal, Scope } from './principal';
import { ProblemError } from '../api/problem';
import type { Clock } from '../clock';
import { recordAudit, type AuditActor } from '../db/audit';
import type { Pool } from '../db/pool';
import { generateKey, type KeyEnvironment } from './format';
import type { Peppers } from './pepper';
import { keyStatus } from './status';
import {
  findCustomerId,
  findKey,
  hasUsableAdminKey,
  insertKey,
  listKeys,
  updateKey,
  type ApiKey,
  type KeyChanges,
  type StoredKey,
} from './store';
import { inTransaction, type Queryable } from '../db/transaction';

export interface NewKey {
  name: string;
  environment: KeyEnvironment;
  scopes: readonly Scope[];
  /** External id of the one customer the key may act for; null or absent: any customer. */
  customer?: string | null | undefined;
  expiresAt?: Date | null | undefined;
  ratePerSecond?: number | undefined;
  burst?: number | undefined;
}

export interface KeyPatch {
  name?: string | undefined;
  scopes?: readonly Scope[] | undefined;
  expiresAt?: Date | null | undefined;
  ratePerSecond?: number | undefined;
  burst?: number | undefined;
}

/**
 * Who hands out a key or a change: an API key, bounded by its own powers, or the admin CLI or
 * the system itself, which are not.
 */
export type Grantor = Principal | 'cli' | 'system';

const actorOf = (by: Grantor): AuditActor => (typeof by === 'string' ? by : `key:${by.keyId}`);

const unknownCustomer = (externalId: string) =>
  new ProblemError('unprocessable', `No customer "${externalId}".`, { reason: 'unknown_customer' });

/**
 * A key never hands out more than it holds, to another key or to itself: scopes it lacks, a
 * rate or burst above its own, or a life beyond its own expiry are refused (403). Only the
 * powers `grant` names are checked.
 */
function assertWithin(
  by: Grantor,
  grant: {
    scopes?: readonly Scope[] | undefined;
    ratePerSecond?: number | undefined;
    burst?: number | undefined;
    expiresAt?: Date | null | undefined;
  },
): void {
  if (typeof by === 'string') return;
  const missing = (grant.scopes ?? []).filter((s) => !by.scopes.includes(s));
  if (missing.length > 0) {
    throw new ProblemError('forbidden', `A key cannot grant scopes it does not hold: ${missing.join(', ')}.`, {
      reason: 'scope_escalation',
      scopes: missing,
    });
  }
  const own = by.limits;
  if ((grant.ratePerSecond ?? 0) > own.ratePerSecond || (grant.burst ?? 0) > own.burst) {
    throw new ProblemError('forbidden', `A key cannot grant a rate limit above its own (${own.ratePerSecond}/s, burst ${own.burst}).`, {
      reason: 'rate_escalation',
      rate_limit: { per_second: own.ratePerSecond, burst: own.burst },
    });
  }
  if (own.expiresAt && grant.expiresAt !== undefined && (grant.expiresAt === null || grant.expiresAt > own.expiresAt)) {
    throw new ProblemError('forbidden', `A key cannot grant access beyond its own expiry (${own.expiresAt.toISOString()}).`, {
      reason: 'expiry_escalation',
      expires_at: own.expiresAt.toISOString(),
    });
  }
}

/**
 * The customer a new key is restricted to. A restricted grantor keeps its restriction: no
 * customer named means its own, none (null) would widen it (403), and any other customer is
 * answered exactly like one that does not exist.
 */
function grantedCustomer(by: Grantor, requested: string | null | undefined): string | null | undefined {
  if (typeof by === 'string' || !by.customer) return requested;
  if (requested === null) {
    throw new ProblemError('forbidden', 'A key restricted to a customer cannot grant access to every customer.', {
      reason: 'customer_escalation',
    });
  }
  if (requested !== undefined && requested !== by.customer.externalId) throw unknownCustomer(requested);
  return by.customer.externalId;
}

/** A freshly issued key: the only time its secret exists outside the caller's hands. */
export interface IssuedKey {
  secret: string;
  key: ApiKey;
}

export interface KeyServiceDeps {
  pool: Pool;
  peppers: Peppers;
  clock: Clock;
  defaults: { ratePerSecond: number; burst: number };
  /**
   * Called after a change to a key commits. This process drops its cached copy at once, so its
   * own next request sees the change; other processes learn it from the trigger's NOTIFY.
   */
  onChanged?: (id: string) => void;
}

const MAX_GRACE_SECONDS = 30 * 24 * 3600;

/** Drops the stored hash: nothing outside this chapter needs it. */
function publicKey(stored: StoredKey): ApiKey {
  const { keyHash: _hash, ...key } = stored;
  return key;
}

const describe = (k: ApiKey) => ({
  name: k.name,
  environment: k.environment,
  scopes: k.scopes,
  customer: k.customer?.externalId ?? null,
  start: k.start,
  expires_at: k.expiresAt?.toISOString() ?? null,
  rate_limit: { per_second: k.ratePerSecond, burst: k.burst },
});

/**
 * The key lifecycle: issue, change, revoke, rotate. Each change and its audit entry commit in
 * one transaction; the api_keys trigger then tells every API process to drop its cached copy
 * (this one drops it at once: `onChanged`).
 */
export class KeyService {
  constructor(private readonly deps: KeyServiceDeps) {}

  /** Omitted limits default to the configured ones and the grantor's expiry, never beyond the grantor's own. */
  async create(input: NewKey, by: Grantor): Promise<IssuedKey> {
    this.assertFuture(input.expiresAt, 'expires_at');
    const { defaults } = this.deps;
    const own = typeof by === 'string' ? undefined : by.limits;
    const granted: NewKey = {
      ...input,
      customer: grantedCustomer(by, input.customer),
      ratePerSecond: input.ratePerSecond ?? Math.min(defaults.ratePerSecond, own?.ratePerSecond ?? Infinity),
      burst: input.burst ?? Math.min(defaults.burst, own?.burst ?? Infinity),
      expiresAt: input.expiresAt === undefined ? (own?.expiresAt ?? null) : input.expiresAt,
    };
    assertWithin(by, granted);
    const actor = actorOf(by);
    return inTransaction(this.deps.pool, async (tx) => {
      const issued = await this.insert(tx, granted, actor, typeof by !== 'string' && by.customer ? by.customer.id : undefined);
      await recordAudit(tx, {
        actor,
        action: 'api_key.created',
        subjectType: 'api_key',
        subjectId: issued.key.id,
        details: describe(issued.key),
      });
      return issued;
    });
  }

  async get(id: string): Promise<ApiKey | undefined> {
    const key = await findKey(this.deps.pool, id);
    return key && publicKey(key);
  }

  async list(opts: { limit: number; after?: string | undefined; customerId?: string | undefined }): Promise<ApiKey[]> {
    return (await listKeys(this.deps.pool, opts)).map(publicKey);
  }

  async update(id: string, patch: KeyPatch, by: Grantor): Promise<ApiKey> {
    this.assertFuture(patch.expiresAt, 'expires_at');
    assertWithin(by, patch);
    const actor = actorOf(by);
    const result = await inTransaction(this.deps.pool, async (tx) => {
      const before = await this.lockUsable(tx, id, 'change');
      const changes: KeyChanges = {};
      const changed: Record<string, { from: unknown; to: unknown }> = {};
      const note = <K extends keyof KeyChanges>(field: K, name: string, from: unknown, to: KeyChanges[K] | undefined, same: boolean) => {
        if (to === undefined || same) return;
        changes[field] = to;
        changed[name] = { from, to };
      };
      note('name', 'name', before.name, patch.name, patch.name === before.name);
      note('expiresAt', 'expires_at', before.expiresAt, patch.expiresAt, patch.expiresAt?.getTime() === before.expiresAt?.getTime());
      note('ratePerSecond', 'rate_per_second', before.ratePerSecond, patch.ratePerSecond, patch.ratePerSecond === before.ratePerSecond);
      note('burst', 'burst', before.burst, patch.burst, patch.burst === before.burst);
      const scopes = patch.scopes && [...new Set(patch.scopes)].sort();
      note('scopes', 'scopes', before.scopes, scopes, scopes?.join() === [...before.scopes].sort().join());
      if (Object.keys(changes).length === 0) return publicKey(before);

      const after = await updateKey(tx, id, changes);
      const { scopes: scopeChange, ...others } = changed;
      // Scope changes are their own audit action: they are what a reviewer looks for.
      if (scopeChange) {
        await recordAudit(tx, { actor, action: 'api_key.scopes_changed', subjectType: 'api_key', subjectId: id, details: scopeChange });
      }
      if (Object.keys(others).length > 0) {
        await recordAudit(tx, { actor, action: 'api_key.updated', subjectType: 'api_key', subjectId: id, details: { changes: others } });
      }
      return publicKey(after);
    });
    this.deps.onChanged?.(id);
    return result;
  }

  /** Immediate and final. Revoking a revoked key changes nothing and is not an error. */
  async revoke(id: string, by: Grantor): Promise<ApiKey | undefined> {
    const actor = actorOf(by);
    const result = await inTransaction(this.deps.pool, async (tx) => {
      const key = await findKey(tx, id, true);
      if (!key) return undefined;
      if (key.revokedAt) return publicKey(key);
      const revoked = await updateKey(tx, id, { revokedAt: this.deps.clock.now() });
      await recordAudit(tx, { actor, action: 'api_key.revoked', subjectType: 'api_key', subjectId: id, details: { start: key.start } });
      return publicKey(revoked);
    });
    this.deps.onChanged?.(id);
    return result;
  }

  /**
   * Issues a successor with the same name, scopes, customer and limits; the old key keeps
   * working until `graceSeconds` from now (0: stops at once), so clients can switch over. The
   * successor is a new secret with the old key's powers: the grantor must hold them all; without
   * `expiresAt` it expires with the grantor.
   */
  async rotate(
    id: string,
    opts: { graceSeconds: number; expiresAt?: Date | null | undefined },
    by: Grantor,
  ): Promise<IssuedKey & { previous: ApiKey }> {
    if (!Number.isInteger(opts.graceSeconds) || opts.graceSeconds < 0 || opts.graceSeconds > MAX_GRACE_SECONDS) {
      throw new ProblemError('validation_failed', `grace_seconds must be an integer between 0 and ${MAX_GRACE_SECONDS}.`);
    }
    this.assertFuture(opts.expiresAt, 'expires_at');
    const actor = actorOf(by);
    const expiresAt = opts.expiresAt === undefined && typeof by !== 'string' ? by.limits.expiresAt : (opts.expiresAt ?? null);
    const result = await inTransaction(this.deps.pool, async (tx) => {
      const old = await this.lockUsable(tx, id, 'rotate');
      if (old.replacedBy)
        throw new ProblemError('conflict', `Key ${id} was already rotated to ${old.replacedBy}.`, { replaced_by: old.replacedBy });
      assertWithin(by, { scopes: old.scopes, ratePerSecond: old.ratePerSecond, burst: old.burst, expiresAt });
      const now = this.deps.clock.now();
      const issued = await this.insert(
        tx,
        {
          name: old.name,
          environment: old.environment,
          scopes: old.scopes,
          customer: old.customer?.externalId ?? null,
          expiresAt,
          ratePerSecond: old.ratePerSecond,
          burst: old.burst,
        },
        actor,
        old.customer?.id ?? null,
      );
      const deadline = new Date(now.getTime() + opts.graceSeconds * 1000);
      // A grace period never extends a key beyond the expiry it already had.
      const oldExpiry = old.expiresAt && old.expiresAt < deadline ? old.expiresAt : deadline;
      const previous = await updateKey(tx, id, { replacedBy: issued.key.id, expiresAt: oldExpiry });
      await recordAudit(tx, {
        actor,
        action: 'api_key.rotated',
        subjectType: 'api_key',
        subjectId: id,
        details: { replaced_by: issued.key.id, expires_at: oldExpiry.toISOString() },
      });
      await recordAudit(tx, {
        actor,
        action: 'api_key.created',
        subjectType: 'api_key',
        subjectId: issued.key.id,
        details: { ...describe(issued.key), rotated_from: id },
      });
      return { ...issued, previous: publicKey(previous) };
    });
    this.deps.onChanged?.(id);
    return result;
  }

  /** Whether the system can be administered through the API yet (see `npm run cli -- keys create`). */
  hasUsableAdminKey(): Promise<boolean> {
    return hasUsableAdminKey(this.deps.pool, this.deps.clock.now());
  }

  private async insert(tx: Queryable, input: NewKey, actor: AuditActor, knownCustomerId?: string | null): Promise<IssuedKey> {
    let customerId = knownCustomerId ?? null;
    if (knownCustomerId === undefined && input.customer) {
      customerId = (await findCustomerId(tx, input.customer)) ?? null;
      if (!customerId) throw new ProblemError('unprocessable', `No customer "${input.customer}".`, { reason: 'unknown_customer' });
    }
    const generated = generateKey(input.environment);
    const stored = await insertKey(tx, {
      name: input.name,
      environment: input.environment,
      scopes: [...new Set(input.scopes)].sort(),
      customerId,
      keyHash: this.deps.peppers.digest(generated.secret),
      pepperVersion: this.deps.peppers.current,
      start: generated.start,
      ratePerSecond: input.ratePerSecond ?? this.deps.defaults.ratePerSecond,
      burst: input.burst ?? this.deps.defaults.burst,
      expiresAt: input.expiresAt ?? null,
      createdBy: actor,
      createdAt: this.deps.clock.now(),
    });
    return { secret: generated.secret, key: publicKey(stored) };
  }

  /** Locks the key for a change; revoked and expired keys stay as they are. */
  private async lockUsable(tx: Queryable, id: string, verb: string): Promise<StoredKey> {
    const key = await findKey(tx, id, true);
    if (!key) throw new ProblemError('not_found', `No API key ${id}.`);
    const status = keyStatus(key, this.deps.clock.now());
    if (status !== 'active') throw new ProblemError('conflict', `Cannot ${verb} a ${status} key.`, { reason: `key_${status}` });
    return key;
  }

  private assertFuture(at: Date | null | undefined, field: string): void {
    if (at && at.getTime() <= this.deps.clock.now().getTime()) {
      throw new ProblemError('validation_failed', `${field} must be in the future.`, {
        errors: [{ pointer: `#/${field}`, detail: 'must be in the future' }],
      });
    }
  }
}
