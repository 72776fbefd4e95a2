import type { Clock } from '../clock';
import { recordAudit, type AuditActor } from '../db/audit';
import type { Pool } from '../db/pool';
import { inTransaction, type Queryable } from '../db/transaction';
import { ok, refuse, type Refusal, type Result } from '../domain/result';
import { generateKey, type KeyEnvironment } from './format';
import type { Peppers } from './pepper';
import { auditActorOf, seesCustomerId, type Actor, type Scope } from './principal';
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
 * Why the key service refuses. `invalid_field` is a value only the service can judge (against
 * its clock or its bounds); its details name the `field` and what is wrong with it (`detail`).
 */
export type KeyRefusalReason =
  | 'unknown_key'
  | 'unknown_customer'
  | 'invalid_field'
  | 'scope_escalation'
  | 'rate_escalation'
  | 'expiry_escalation'
  | 'customer_escalation'
  | 'key_revoked'
  | 'key_expired'
  | 'key_rotated';

type KeyResult<T> = Result<T, KeyRefusalReason>;

const unknownKey = (id: string) => refuse('not_found', 'unknown_key', `No API key ${id}.`);

const unknownCustomer = (externalId: string) => refuse('invalid', 'unknown_customer', `No customer "${externalId}".`);

const invalidField = (field: string, detail: string) => refuse('invalid', 'invalid_field', `${field} ${detail}.`, { field, detail });

/**
 * A key never hands out more than it holds, to another key or to itself: scopes it lacks, a
 * rate or burst above its own, or a life beyond its own expiry are refused. Only the powers
 * `grant` names are checked.
 */
function escalationIn(
  actor: Actor,
  grant: {
    scopes?: readonly Scope[] | undefined;
    ratePerSecond?: number | undefined;
    burst?: number | undefined;
    expiresAt?: Date | null | undefined;
  },
): Refusal<KeyRefusalReason> | undefined {
  if (typeof actor === 'string') return undefined;
  const missing = (grant.scopes ?? []).filter((s) => !actor.scopes.includes(s));
  if (missing.length > 0) {
    return refuse('forbidden', 'scope_escalation', `A key cannot grant scopes it does not hold: ${missing.join(', ')}.`, {
      scopes: missing,
    });
  }
  const own = actor.limits;
  if ((grant.ratePerSecond ?? 0) > own.ratePerSecond || (grant.burst ?? 0) > own.burst) {
    return refuse(
      'forbidden',
      'rate_escalation',
      `A key cannot grant a rate limit above its own (${own.ratePerSecond}/s, burst ${own.burst}).`,
      {
        rate_limit: { per_second: own.ratePerSecond, burst: own.burst },
      },
    );
  }
  if (own.expiresAt && grant.expiresAt !== undefined && (grant.expiresAt === null || grant.expiresAt > own.expiresAt)) {
    return refuse('forbidden', 'expiry_escalation', `A key cannot grant access beyond its own expiry (${own.expiresAt.toISOString()}).`, {
      expires_at: own.expiresAt.toISOString(),
    });
  }
  return undefined;
}

/**
 * The customer a new key is restricted to. A restricted actor keeps its restriction: no
 * customer named means its own, none (null) would widen it, and any other customer is
 * answered exactly like one that does not exist.
 */
function grantedCustomer(actor: Actor, requested: string | null | undefined): KeyResult<string | null | undefined> {
  if (typeof actor === 'string' || !actor.customer) return ok(requested);
  if (requested === null) {
    return refuse('forbidden', 'customer_escalation', 'A key restricted to a customer cannot grant access to every customer.');
  }
  if (requested !== undefined && requested !== actor.customer.externalId) return unknownCustomer(requested);
  return ok(actor.customer.externalId);
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

/** The key, unless it does not exist or belongs to a customer the actor may not see: both are absent to it. */
function visible(actor: Actor, id: string, key: StoredKey | undefined): KeyResult<StoredKey> {
  return key && seesCustomerId(actor, key.customer?.id ?? null) ? ok(key) : unknownKey(id);
}

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

  /** Omitted limits default to the configured ones and the actor's expiry, never beyond the actor's own. */
  async create(actor: Actor, input: NewKey): Promise<KeyResult<IssuedKey>> {
    const pastExpiry = this.notInFuture(input.expiresAt, 'expires_at');
    if (pastExpiry) return pastExpiry;
    const customer = grantedCustomer(actor, input.customer);
    if (!customer.ok) return customer;
    const { defaults } = this.deps;
    const own = typeof actor === 'string' ? undefined : actor.limits;
    const granted: NewKey = {
      ...input,
      customer: customer.value,
      ratePerSecond: input.ratePerSecond ?? Math.min(defaults.ratePerSecond, own?.ratePerSecond ?? Infinity),
      burst: input.burst ?? Math.min(defaults.burst, own?.burst ?? Infinity),
      expiresAt: input.expiresAt === undefined ? (own?.expiresAt ?? null) : input.expiresAt,
    };
    const escalation = escalationIn(actor, granted);
    if (escalation) return escalation;
    const by = auditActorOf(actor);
    return inTransaction(this.deps.pool, async (tx) => {
      const customerId = await this.customerIdFor(tx, actor, granted.customer);
      if (!customerId.ok) return customerId;
      const issued = await this.insert(tx, granted, by, customerId.value);
      await recordAudit(tx, {
        actor: by,
        action: 'api_key.created',
        subjectType: 'api_key',
        subjectId: issued.key.id,
        details: describe(issued.key),
      });
      return ok(issued);
    });
  }

  /** The key; to a restricted actor another customer's key is as absent as one that does not exist. */
  async get(actor: Actor, id: string): Promise<KeyResult<ApiKey>> {
    const found = visible(actor, id, await findKey(this.deps.pool, id));
    return found.ok ? ok(publicKey(found.value)) : found;
  }

  /** Oldest first; a restricted actor lists its customer's keys only. */
  async list(actor: Actor, page: { limit: number; after?: string | undefined }): Promise<ApiKey[]> {
    const customerId = typeof actor === 'string' ? undefined : actor.customer?.id;
    return (await listKeys(this.deps.pool, { ...page, customerId })).map(publicKey);
  }

  async update(actor: Actor, id: string, patch: KeyPatch): Promise<KeyResult<ApiKey>> {
    // Another customer's key is absent before anything else is judged, so no answer tells it exists.
    const seen = await this.get(actor, id);
    if (!seen.ok) return seen;
    const refused = this.notInFuture(patch.expiresAt, 'expires_at') ?? escalationIn(actor, patch);
    if (refused) return refused;
    const by = auditActorOf(actor);
    const result = await inTransaction(this.deps.pool, async (tx) => {
      const locked = await this.lockUsable(tx, actor, id, 'change');
      return locked.ok ? ok(await this.applyPatch(tx, locked.value, patch, by)) : locked;
    });
    if (result.ok) this.deps.onChanged?.(id);
    return result;
  }

  /** Immediate and final. Revoking a revoked key changes nothing and is not refused. */
  async revoke(actor: Actor, id: string): Promise<KeyResult<ApiKey>> {
    const result = await inTransaction(this.deps.pool, async (tx): Promise<KeyResult<ApiKey>> => {
      const found = visible(actor, id, await findKey(tx, id, true));
      if (!found.ok) return found;
      const key = found.value;
      if (key.revokedAt) return ok(publicKey(key));
      const revoked = await updateKey(tx, id, { revokedAt: this.deps.clock.now() });
      await recordAudit(tx, {
        actor: auditActorOf(actor),
        action: 'api_key.revoked',
        subjectType: 'api_key',
        subjectId: id,
        details: { start: key.start },
      });
      return ok(publicKey(revoked));
    });
    if (result.ok) this.deps.onChanged?.(id);
    return result;
  }

  /**
   * Issues a successor with the same name, scopes, customer and limits; the old key keeps
   * working until `graceSeconds` from now (0: stops at once), so clients can switch over. The
   * successor is a new secret with the old key's powers: the actor must hold them all; without
   * `expiresAt` it expires with the actor.
   */
  async rotate(
    actor: Actor,
    id: string,
    opts: { graceSeconds: number; expiresAt?: Date | null | undefined },
  ): Promise<KeyResult<IssuedKey & { previous: ApiKey }>> {
    const seen = await this.get(actor, id);
    if (!seen.ok) return seen;
    if (!Number.isInteger(opts.graceSeconds) || opts.graceSeconds < 0 || opts.graceSeconds > MAX_GRACE_SECONDS) {
      return invalidField('grace_seconds', `must be an integer between 0 and ${MAX_GRACE_SECONDS}`);
    }
    const pastExpiry = this.notInFuture(opts.expiresAt, 'expires_at');
    if (pastExpiry) return pastExpiry;
    const expiresAt = opts.expiresAt === undefined && typeof actor !== 'string' ? actor.limits.expiresAt : (opts.expiresAt ?? null);
    const result = await inTransaction(this.deps.pool, async (tx) => {
      const locked = await this.lockUsable(tx, actor, id, 'rotate');
      if (!locked.ok) return locked;
      const old = locked.value;
      if (old.replacedBy) {
        return refuse('conflict', 'key_rotated', `Key ${id} was already rotated to ${old.replacedBy}.`, { replaced_by: old.replacedBy });
      }
      const escalation = escalationIn(actor, { scopes: old.scopes, ratePerSecond: old.ratePerSecond, burst: old.burst, expiresAt });
      if (escalation) return escalation;
      return ok(await this.replace(tx, old, { graceSeconds: opts.graceSeconds, expiresAt }, auditActorOf(actor)));
    });
    if (result.ok) this.deps.onChanged?.(id);
    return result;
  }

  /** Whether the system can be administered through the API yet (see `npm run cli -- keys create`). */
  hasUsableAdminKey(): Promise<boolean> {
    return hasUsableAdminKey(this.deps.pool, this.deps.clock.now());
  }

  /** Applies what the patch changes, with one audit entry for scopes and one for the rest. */
  private async applyPatch(tx: Queryable, before: StoredKey, patch: KeyPatch, by: AuditActor): Promise<ApiKey> {
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

    const id = before.id;
    const after = await updateKey(tx, id, changes);
    const { scopes: scopeChange, ...others } = changed;
    // Scope changes are their own audit action: they are what a reviewer looks for.
    if (scopeChange) {
      await recordAudit(tx, { actor: by, action: 'api_key.scopes_changed', subjectType: 'api_key', subjectId: id, details: scopeChange });
    }
    if (Object.keys(others).length > 0) {
      await recordAudit(tx, { actor: by, action: 'api_key.updated', subjectType: 'api_key', subjectId: id, details: { changes: others } });
    }
    return publicKey(after);
  }

  /** Issues the successor of `old` and lets `old` run out at the grace deadline. */
  private async replace(
    tx: Queryable,
    old: StoredKey,
    opts: { graceSeconds: number; expiresAt: Date | null },
    by: AuditActor,
  ): Promise<IssuedKey & { previous: ApiKey }> {
    const issued = await this.insert(
      tx,
      {
        name: old.name,
        environment: old.environment,
        scopes: old.scopes,
        expiresAt: opts.expiresAt,
        ratePerSecond: old.ratePerSecond,
        burst: old.burst,
      },
      by,
      old.customer?.id ?? null,
    );
    const deadline = new Date(this.deps.clock.now().getTime() + opts.graceSeconds * 1000);
    // A grace period never extends a key beyond the expiry it already had.
    const oldExpiry = old.expiresAt && old.expiresAt < deadline ? old.expiresAt : deadline;
    const previous = await updateKey(tx, old.id, { replacedBy: issued.key.id, expiresAt: oldExpiry });
    await recordAudit(tx, {
      actor: by,
      action: 'api_key.rotated',
      subjectType: 'api_key',
      subjectId: old.id,
      details: { replaced_by: issued.key.id, expires_at: oldExpiry.toISOString() },
    });
    await recordAudit(tx, {
      actor: by,
      action: 'api_key.created',
      subjectType: 'api_key',
      subjectId: issued.key.id,
      details: { ...describe(issued.key), rotated_from: old.id },
    });
    return { ...issued, previous: publicKey(previous) };
  }

  /** The internal id of the customer a new key is for: a restricted actor's own, the one named, or none. */
  private async customerIdFor(tx: Queryable, actor: Actor, externalId: string | null | undefined): Promise<KeyResult<string | null>> {
    if (typeof actor !== 'string' && actor.customer) return ok(actor.customer.id);
    if (!externalId) return ok(null);
    const id = await findCustomerId(tx, externalId);
    return id ? ok(id) : unknownCustomer(externalId);
  }

  private async insert(tx: Queryable, input: NewKey, by: AuditActor, customerId: string | null): Promise<IssuedKey> {
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
      createdBy: by,
      createdAt: this.deps.clock.now(),
    });
    return { secret: generated.secret, key: publicKey(stored) };
  }

  /** Locks the key for a change; revoked and expired keys stay as they are. */
  private async lockUsable(tx: Queryable, actor: Actor, id: string, verb: string): Promise<KeyResult<StoredKey>> {
    const found = visible(actor, id, await findKey(tx, id, true));
    if (!found.ok) return found;
    const status = keyStatus(found.value, this.deps.clock.now());
    if (status === 'active') return found;
    return refuse('conflict', `key_${status}`, `Cannot ${verb} a ${status} key.`);
  }

  private notInFuture(at: Date | null | undefined, field: string): Refusal<KeyRefusalReason> | undefined {
    return at && at.getTime() <= this.deps.clock.now().getTime() ? invalidField(field, 'must be in the future') : undefined;
  }
}
