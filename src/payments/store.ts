import type { Queryable } from '../db/transaction';

export interface ChargeRecord {
  amount: string;
  currency: string;
  status: 'pending' | 'succeeded' | 'failed';
  providerChargeId: string | null;
  attempts: Array<{
    attempt: number;
    idempotencyKey: string;
    status: 'pending' | 'succeeded' | 'declined';
    providerChargeId: string | null;
    declineCode: string | null;
    requestedAt: Date;
    completedAt: Date | null;
  }>;
}

/** The invoice's charge and every collection attempt, or undefined when none was made. */
export async function chargeOf(db: Queryable, invoiceId: string): Promise<ChargeRecord | undefined> {
  const { rows } = await db.query<{ amount: string; currency: string; status: ChargeRecord['status']; provider_charge_id: string | null }>(
    'select amount::text, currency, status, provider_charge_id from charges where invoice_id = $1',
    [invoiceId],
  );
  const charge = rows[0];
  if (!charge) return undefined;
  const attempts = await db.query<{
    attempt: number;
    idempotency_key: string;
    status: ChargeRecord['attempts'][number]['status'];
    provider_charge_id: string | null;
    decline_code: string | null;
    requested_at: Date;
    completed_at: Date | null;
  }>(
    'select attempt, idempotency_key, status, provider_charge_id, decline_code, requested_at, completed_at from charge_attempts where invoice_id = $1 order by attempt',
    [invoiceId],
  );
  return {
    amount: charge.amount,
    currency: charge.currency,
    status: charge.status,
    providerChargeId: charge.provider_charge_id,
    attempts: attempts.rows.map((a) => ({
      attempt: a.attempt,
      idempotencyKey: a.idempotency_key,
      status: a.status,
      providerChargeId: a.provider_charge_id,
      declineCode: a.decline_code,
      requestedAt: a.requested_at,
      completedAt: a.completed_at,
    })),
  };
}

/**
 * Records a collection attempt before the provider is called: the invoice's charge (once) and
 * this attempt under its idempotency key (once per attempt number), so a retried attempt finds
 * its row and reuses its key.
 */
export async function openChargeAttempt(
  db: Queryable,
  attempt: { invoiceId: string; attempt: number; idempotencyKey: string; amount: string; currency: string },
  at: Date,
): Promise<void> {
  await db.query(
    `insert into charges (invoice_id, amount, currency, status, created_at, updated_at) values ($1, $2, $3, 'pending', $4, $4)
     on conflict (invoice_id) do nothing`,
    [attempt.invoiceId, attempt.amount, attempt.currency, at],
  );
  await db.query(
    `insert into charge_attempts (invoice_id, attempt, idempotency_key, status, requested_at) values ($1, $2, $3, 'pending', $4)
     on conflict (invoice_id, attempt) do nothing`,
    [attempt.invoiceId, attempt.attempt, attempt.idempotencyKey, at],
  );
}

/** Closes a pending attempt the provider declined; an attempt already closed stays as it is. */
export async function recordDeclinedAttempt(
  db: Queryable,
  invoiceId: string,
  attempt: number,
  decline: { providerChargeId: string; declineCode: string | null },
  at: Date,
): Promise<void> {
  await db.query(
    `update charge_attempts set status = 'declined', provider_charge_id = $3, decline_code = $4, completed_at = $5
      where invoice_id = $1 and attempt = $2 and status = 'pending'`,
    [invoiceId, attempt, decline.providerChargeId, decline.declineCode, at],
  );
}

/**
 * Marks the attempt that charged (found by its idempotency key: it may be an earlier attempt whose
 * response was lost) and the invoice's charge as succeeded. Returns whether the attempt was not
 * yet recorded as succeeded, i.e. whether this is news.
 */
export async function recordSucceededCharge(
  db: Queryable,
  invoiceId: string,
  success: { idempotencyKey: string; providerChargeId: string },
  at: Date,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `update charge_attempts set status = 'succeeded', provider_charge_id = $2, completed_at = $3
      where idempotency_key = $1 and status <> 'succeeded'`,
    [success.idempotencyKey, success.providerChargeId, at],
  );
  await db.query(`update charges set status = 'succeeded', provider_charge_id = $2, updated_at = $3 where invoice_id = $1`, [
    invoiceId,
    success.providerChargeId,
    at,
  ]);
  return Boolean(rowCount);
}

/** After the last declined attempt: the invoice's still pending charge has failed. */
export async function failPendingCharge(db: Queryable, invoiceId: string, at: Date): Promise<void> {
  await db.query(`update charges set status = 'failed', updated_at = $2 where invoice_id = $1 and status = 'pending'`, [invoiceId, at]);
}
