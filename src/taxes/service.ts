import type { Clock } from '../clock';
import { CustomerService } from '../customers/service';
import type { Pool } from '../db/pool';
import { inTransaction } from '../db/transaction';
import { ok, refuse, type Result } from '../domain/result';
import type { TaxRateTerms } from '../domain/taxes';
import { auditActorOf, type Actor } from '../keys/principal';
import { getMeter } from '../meters/store';
import { activeTaxRates, archiveTaxRate, insertTaxRate, lockCustomerTaxRates, type StoredTaxRate } from './store';

const sameTerms = (a: TaxRateTerms, b: TaxRateTerms) =>
  a.name === b.name && a.percentage === b.percentage && a.inclusive === b.inclusive && a.meter === b.meter && a.base_fee === b.base_fee;

/**
 * A customer's tax rates. Rates are immutable (invoice lines name the rate they applied, and
 * reconciliation reprices with it): a new percentage is an archive and a new rate. Drafts from
 * then on use the active rates; finalized invoices keep theirs.
 */
export class TaxRateService {
  constructor(
    private readonly pool: Pool,
    private readonly clock: Clock,
    private readonly customers = new CustomerService(pool),
  ) {}

  /**
   * Adds a rate; the same terms under an active code again return it (created: false). Other
   * terms under an active code, or a rate inclusive where the customer's others are exclusive (or
   * the reverse), are conflicts.
   */
  async create(
    actor: Actor,
    externalId: string,
    rate: TaxRateTerms,
  ): Promise<
    Result<{ created: boolean; rate: StoredTaxRate }, 'unknown_customer' | 'unknown_meter' | 'tax_rate_exists' | 'tax_mode_conflict'>
  > {
    const customer = await this.customers.get(actor, externalId);
    if (!customer.ok) return customer;
    if (rate.meter !== null && !(await getMeter(this.pool, rate.meter)))
      return refuse('invalid', 'unknown_meter', `No meter "${rate.meter}".`);
    return inTransaction(this.pool, async (client) => {
      await lockCustomerTaxRates(client, customer.value.id);
      const active = await activeTaxRates(client, customer.value.id);
      const same = active.find((r) => r.code === rate.code);
      if (same) {
        if (sameTerms(same, rate)) return ok({ created: false, rate: same });
        return refuse(
          'conflict',
          'tax_rate_exists',
          `Customer "${externalId}" already has an active rate "${rate.code}" with other terms; archive it first.`,
        );
      }
      if (active.some((r) => r.inclusive !== rate.inclusive)) {
        return refuse(
          'conflict',
          'tax_mode_conflict',
          `Customer "${externalId}" has ${rate.inclusive ? 'exclusive' : 'inclusive'} rates; one customer's rates are all inclusive or all exclusive.`,
        );
      }
      return ok({ created: true, rate: await insertTaxRate(client, customer.value.id, rate, auditActorOf(actor), this.clock.now()) });
    });
  }

  /** The customer's active rates, in the order their tax lines appear. */
  async list(actor: Actor, externalId: string): Promise<Result<StoredTaxRate[], 'unknown_customer'>> {
    const customer = await this.customers.get(actor, externalId);
    if (!customer.ok) return customer;
    return ok(await activeTaxRates(this.pool, customer.value.id));
  }

  /** Archives the active rate with this code: later drafts no longer apply it. */
  async archive(actor: Actor, externalId: string, code: string): Promise<Result<StoredTaxRate, 'unknown_customer' | 'unknown_tax_rate'>> {
    const customer = await this.customers.get(actor, externalId);
    if (!customer.ok) return customer;
    const archived = await inTransaction(this.pool, async (client) => {
      await lockCustomerTaxRates(client, customer.value.id);
      return archiveTaxRate(client, customer.value.id, code, auditActorOf(actor), this.clock.now());
    });
    return archived ? ok(archived) : refuse('not_found', 'unknown_tax_rate', `Customer "${externalId}" has no active tax rate "${code}".`);
  }
}
