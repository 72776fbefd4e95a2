import { recordAudit, type AuditActor } from '../db/audit';
import type { Pool } from '../db/pool';
import { inTransaction, type Queryable } from '../db/transaction';

/*
 * The webhook_endpoints table. What the API shows of an endpoint never includes its secret; only
 * delivery reads it (signingEndpointsOf).
 */

export interface WebhookEndpoint {
  id: string;
  url: string;
  /** The owning customer's internal id; null for a global endpoint (every customer's notifications). */
  customerId: string | null;
  /** The owning customer's external id; null for a global endpoint. */
  customer: string | null;
  createdAt: Date;
  disabledAt: Date | null;
}

/** An active endpoint as delivery needs it: where to POST, and the secret to sign with. */
export interface SigningEndpoint {
  id: string;
  url: string;
  secret: string;
}

interface EndpointRow {
  id: string;
  url: string;
  customer_id: string | null;
  customer: string | null;
  created_at: Date;
  disabled_at: Date | null;
}

const endpointColumns = 'e.id, e.url, e.customer_id, c.external_id as customer, e.created_at, e.disabled_at';

const toEndpoint = (r: EndpointRow): WebhookEndpoint => ({
  id: r.id,
  url: r.url,
  customerId: r.customer_id,
  customer: r.customer,
  createdAt: r.created_at,
  disabledAt: r.disabled_at,
});

/** Inserts the endpoint and its audit entry (never the secret) in one transaction. */
export async function createEndpoint(
  pool: Pool,
  input: { url: string; customerId: string | null; secret: string; at: Date; actor: AuditActor },
): Promise<WebhookEndpoint> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<{ id: string }>(
      'insert into webhook_endpoints (customer_id, url, secret, created_at) values ($1, $2, $3, $4) returning id',
      [input.customerId, input.url, input.secret, input.at],
    );
    const endpoint = (await findEndpoint(client, rows[0]!.id))!;
    await recordAudit(client, {
      actor: input.actor,
      action: 'webhook_endpoint.created',
      subjectType: 'webhook_endpoint',
      subjectId: endpoint.id,
      details: { url: endpoint.url, customer: endpoint.customer },
    });
    return endpoint;
  });
}

/** The endpoint; with `lock`, its row stays locked until the caller's transaction ends. */
export async function findEndpoint(db: Queryable, id: string, lock = false): Promise<WebhookEndpoint | undefined> {
  const { rows } = await db.query<EndpointRow>(
    `select ${endpointColumns} from webhook_endpoints e left join customers c on c.id = e.customer_id where e.id = $1${lock ? ' for update of e' : ''}`,
    [id],
  );
  return rows[0] && toEndpoint(rows[0]);
}

/** Endpoints in id order after `after`; with `customerId`, only that customer's. */
export async function listEndpoints(
  db: Queryable,
  opts: { limit: number; after: string | undefined; customerId: string | undefined },
): Promise<WebhookEndpoint[]> {
  const { rows } = await db.query<EndpointRow>(
    `select ${endpointColumns} from webhook_endpoints e left join customers c on c.id = e.customer_id
     where ($1::uuid is null or e.customer_id = $1) and ($2::text is null or e.id::text > $2)
     order by e.id::text limit $3`,
    [opts.customerId ?? null, opts.after ?? null, opts.limit],
  );
  return rows.map(toEndpoint);
}

/** Disables the endpoint and audits it; run it in the transaction that locked the row. */
export async function disableEndpoint(client: Queryable, endpoint: WebhookEndpoint, at: Date, actor: AuditActor): Promise<WebhookEndpoint> {
  await client.query('update webhook_endpoints set disabled_at = $2 where id = $1', [endpoint.id, at]);
  await recordAudit(client, {
    actor,
    action: 'webhook_endpoint.disabled',
    subjectType: 'webhook_endpoint',
    subjectId: endpoint.id,
    details: { url: endpoint.url, customer: endpoint.customer },
  });
  return { ...endpoint, disabledAt: at };
}

/** The subscription's customer's active endpoints and the global ones, in creation order. */
export async function signingEndpointsOf(db: Queryable, subscriptionId: string): Promise<SigningEndpoint[]> {
  const { rows } = await db.query<SigningEndpoint>(
    `select e.id, e.url, e.secret from webhook_endpoints e
     join subscriptions s on s.id = $1
     where e.disabled_at is null and (e.customer_id = s.customer_id or e.customer_id is null)
     order by e.created_at, e.id`,
    [subscriptionId],
  );
  return rows;
}
