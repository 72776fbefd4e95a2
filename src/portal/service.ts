import type { Clock } from '../clock';
import type { CustomerService } from '../customers/service';
import { recordAudit } from '../db/audit';
import type { Pool } from '../db/pool';
import { inTransaction } from '../db/transaction';
import { ok, refuse, type Result } from '../domain/result';
import type { Peppers } from '../keys/pepper';
import { auditActorOf, type Actor } from '../keys/principal';
import { findSession, insertSession, revokeSession, type PortalSession } from './store';
import { generatePortalToken } from './token';

/** How long a portal session lasts unless asked otherwise, and the bounds it may be asked for. */
export const PORTAL_SESSION_SECONDS = { default: 3600, min: 60, max: 86_400 } as const;

export interface NewPortalSession {
  /** External id of the customer the session shows. */
  customer: string;
  /** Lifetime in seconds, within PORTAL_SESSION_SECONDS. */
  expiresInSeconds?: number;
}

/** A created session and its token: the token is shown once, never stored. */
export interface IssuedPortalSession {
  session: PortalSession;
  token: string;
}

const unknownSession = (id: string) => refuse('not_found', 'unknown_portal_session', `No portal session ${id}.`);

/**
 * Customer portal sessions: short-lived, read-only credentials scoped to one customer (what they
 * may call is the authorization policy's `portal` column, src/api/authorization.ts). Creation
 * and revocation are audited; the token is kept only as its HMAC under the API-key pepper.
 */
export class PortalSessionService {
  constructor(private readonly deps: { pool: Pool; peppers: Peppers; clock: Clock; customers: CustomerService }) {}

  async create(actor: Actor, input: NewPortalSession): Promise<Result<IssuedPortalSession, 'unknown_customer' | 'invalid_lifetime'>> {
    const { pool, peppers, clock, customers } = this.deps;
    const seconds = input.expiresInSeconds ?? PORTAL_SESSION_SECONDS.default;
    if (!Number.isInteger(seconds) || seconds < PORTAL_SESSION_SECONDS.min || seconds > PORTAL_SESSION_SECONDS.max) {
      return refuse(
        'invalid',
        'invalid_lifetime',
        `A portal session lasts ${PORTAL_SESSION_SECONDS.min} to ${PORTAL_SESSION_SECONDS.max} seconds, not ${seconds}.`,
      );
    }
    const customer = await customers.get(actor, input.customer, 'reference');
    if (!customer.ok) return customer;
    const now = clock.now();
    // Nothing a key grants outlives the key: a session ends no later than the key that opened it.
    const ownExpiry = typeof actor === 'string' ? null : actor.limits.expiresAt;
    const requested = new Date(now.getTime() + seconds * 1000);
    const expiresAt = ownExpiry && ownExpiry < requested ? ownExpiry : requested;
    const token = generatePortalToken();
    const by = auditActorOf(actor);
    return inTransaction(pool, async (tx) => {
      const session = await insertSession(tx, {
        customerId: customer.value.id,
        tokenHash: peppers.digest(token),
        pepperVersion: peppers.current,
        expiresAt,
        createdBy: by,
        createdAt: now,
      });
      await recordAudit(tx, {
        actor: by,
        action: 'portal_session.created',
        subjectType: 'portal_session',
        subjectId: session.id,
        details: { customer: session.customer.externalId, expires_at: expiresAt.toISOString() },
      });
      return ok({ session, token });
    });
  }

  /** Immediate and final; revoking a revoked session changes nothing and is not refused. */
  async revoke(actor: Actor, id: string): Promise<Result<PortalSession, 'unknown_portal_session'>> {
    return inTransaction(this.deps.pool, async (tx) => {
      const session = await findSession(tx, id, true);
      if (!session) return unknownSession(id);
      if (session.revokedAt) return ok(session);
      const revoked = await revokeSession(tx, id, this.deps.clock.now());
      await recordAudit(tx, {
        actor: auditActorOf(actor),
        action: 'portal_session.revoked',
        subjectType: 'portal_session',
        subjectId: id,
        details: { customer: session.customer.externalId },
        before: { revoked_at: null },
        after: { revoked_at: revoked.revokedAt!.toISOString() },
      });
      return ok(revoked);
    });
  }

  /** The session the calling portal credential is (its principal's keyId is the session id). */
  async current(actor: Actor): Promise<Result<PortalSession, 'not_a_portal_session'>> {
    const session = typeof actor !== 'string' && actor.portal ? await findSession(this.deps.pool, actor.keyId) : undefined;
    return session ? ok(session) : refuse('not_found', 'not_a_portal_session', 'The credential is not a portal session.');
  }
}
