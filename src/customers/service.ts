import type { Pool } from '../db/pool';
import { ok, refuse, type Result } from '../domain/result';
import { auditActorOf, seesCustomer, type Actor } from '../keys/principal';
import type { CustomerDirectory } from './directory';
import { createCustomer, getCustomer, listCustomers, type Customer, type CustomerInput } from './store';

/**
 * How a request names a customer decides how its absence is told: in the path it is the thing
 * asked for (`not_found`); in a body it is an unusable reference (`invalid`, reason `unknown_customer`).
 */
export type CustomerReference = 'subject' | 'reference';

/** Customers as every adapter reaches them; a key restricted to another customer finds none. */
export class CustomerService {
  constructor(
    private readonly pool: Pool,
    /** The ingest path's in-memory directory, told of customers created through this process at once. */
    private readonly directory?: CustomerDirectory,
  ) {}

  /** The customer, when it exists and the actor may see it. */
  async find(actor: Actor, externalId: string): Promise<Customer | undefined> {
    return seesCustomer(actor, externalId) ? getCustomer(this.pool, externalId) : undefined;
  }

  /**
   * The customer's internal id, when it exists and the actor may see it: from memory when this
   * process has the ingest directory (a read only for one not seen before), and without any read
   * for a key restricted to that very customer.
   */
  async findId(actor: Actor, externalId: string): Promise<string | undefined> {
    if (!seesCustomer(actor, externalId)) return undefined;
    if (typeof actor !== 'string' && actor.customer) return actor.customer.id;
    if (!this.directory) return (await getCustomer(this.pool, externalId))?.id;
    return (await this.directory.resolve(new Set([externalId]))).get(externalId);
  }

  /** The customer, or the refusal that tells an absent (or invisible) one exactly alike. */
  async get(actor: Actor, externalId: string, as: CustomerReference = 'subject'): Promise<Result<Customer, 'unknown_customer'>> {
    const customer = await this.find(actor, externalId);
    if (customer) return ok(customer);
    return as === 'subject'
      ? refuse('not_found', 'unknown_customer', `No customer "${externalId}".`)
      : refuse('invalid', 'unknown_customer', `No customer "${externalId}".`);
  }

  /** Creates the customer; the same request again returns it (created: false); other attributes are a conflict. */
  async create(actor: Actor, input: CustomerInput): Promise<Result<{ created: boolean; customer: Customer }, 'customer_exists'>> {
    const result = await createCustomer(this.pool, input, auditActorOf(actor));
    this.directory?.add(result.customer.externalId, result.customer.id);
    const { created, customer } = result;
    if (!created && (customer.name !== input.name || customer.currency !== input.currency)) {
      return refuse('conflict', 'customer_exists', `Customer "${input.external_id}" already exists with other attributes.`, {
        existing: customer,
      });
    }
    return ok(result);
  }

  list(limit: number, after?: string): Promise<Customer[]> {
    return listCustomers(this.pool, limit, after);
  }
}
