import type { Pool } from '../db/pool';
import { ok, refuse, type Ok, type Refusal, type Result } from '../domain/result';
import { auditActorOf, seesCustomer, type Actor } from '../keys/principal';
import { CustomerDirectory } from './directory';
import { createCustomer, getCustomer, listCustomers, type Customer, type CustomerInput } from './store';

/**
 * How a request names a customer decides how its absence is told: in the path it is the thing
 * asked for (`not_found`); in a body it is an unusable reference (`invalid`, reason `unknown_customer`).
 */
export type CustomerReference = 'subject' | 'reference';

/** The customer a create collides with travels with the refusal; each adapter decides whether to show it. */
export type CustomerConflict = Refusal<'customer_exists'> & { details: { existing: Customer } };

/** Customers as every adapter reaches them; a key restricted to another customer finds none. */
export class CustomerService {
  constructor(
    private readonly pool: Pool,
    /** External → internal ids in memory, for ingestion and checks; told of customers created through this service at once. */
    private readonly directory = new CustomerDirectory(pool),
  ) {}

  /** The customer, when it exists and the actor may see it. */
  async find(actor: Actor, externalId: string): Promise<Customer | undefined> {
    return seesCustomer(actor, externalId) ? getCustomer(this.pool, externalId) : undefined;
  }

  /** Internal ids of those of these customers that exist and the actor may see, from memory (a read only for one not seen before). */
  findIds(actor: Actor, externalIds: ReadonlySet<string>): Promise<ReadonlyMap<string, string>> {
    return this.directory.resolve(new Set([...externalIds].filter((externalId) => seesCustomer(actor, externalId))));
  }

  /** The customer's internal id, as `findIds`; a key restricted to this very customer knows it without any read. */
  async findId(actor: Actor, externalId: string): Promise<string | undefined> {
    const own = typeof actor === 'string' ? null : actor.customer;
    if (own) return own.externalId === externalId ? own.id : undefined;
    return (await this.findIds(actor, new Set([externalId]))).get(externalId);
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
  async create(actor: Actor, input: CustomerInput): Promise<Ok<{ created: boolean; customer: Customer }> | CustomerConflict> {
    const result = await createCustomer(this.pool, input, auditActorOf(actor));
    this.directory.add(result.customer.externalId, result.customer.id);
    const { created, customer } = result;
    if (!created && (customer.name !== input.name || customer.currency !== input.currency)) {
      const message = `Customer "${input.external_id}" already exists with other attributes.`;
      return { ...refuse('conflict', 'customer_exists', message), details: { existing: customer } };
    }
    return ok(result);
  }

  list(limit: number, after?: string): Promise<Customer[]> {
    return listCustomers(this.pool, limit, after);
  }
}
