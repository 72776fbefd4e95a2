import type { CustomerService } from '../customers/service';
import { Decimal } from '../domain/money';
import { ok, refuse, type Result } from '../domain/result';
import type { Actor } from '../keys/principal';
import type { MeterCatalog } from '../meters/catalog';
import type { Block, EntitlementStore, QuotaState } from './store';

export interface EntitlementCheck {
  /** External id of the customer. */
  customer: string;
  /** Meter code. */
  meter: string;
}

/** Whether a customer may use a meter now, and its quota as the billing workflow last published it. */
export interface Entitlement {
  customer: string;
  meter: string;
  block: Block | undefined;
  /** The spend limit's block on this meter, if any. */
  spendBlock: Block | undefined;
  quota: (QuotaState & { resetsAt: Date }) | undefined;
  /** hard limit − usage, at least 0; null without a hard limit. */
  remaining: Decimal | null;
  /** Where the customer can raise its limits. */
  upgradeUrl: string;
  /** Where the customer can top up or raise its spend cap. */
  topUpUrl: string;
}

/** Entitlement checks, answered from memory: the blocks and quotas in the store, customers and meters from the ingest caches. */
export class EntitlementService {
  constructor(
    private readonly store: EntitlementStore,
    private readonly customers: CustomerService,
    private readonly catalog: MeterCatalog,
  ) {}

  async check(actor: Actor, request: EntitlementCheck): Promise<Result<Entitlement, 'unknown_customer' | 'unknown_meter'>> {
    const [customerId, meter] = await Promise.all([this.customers.findId(actor, request.customer), this.catalog.forCode(request.meter)]);
    if (!customerId) return refuse('not_found', 'unknown_customer', `No customer "${request.customer}".`);
    if (!meter) return refuse('not_found', 'unknown_meter', `No meter "${request.meter}".`);
    const quota = this.store.quotaOf(customerId, meter.code);
    return ok({
      customer: request.customer,
      meter: meter.code,
      block: this.store.blockOf(customerId, meter.code),
      spendBlock: this.store.spendBlockOf(customerId, meter.code),
      quota,
      remaining: quota?.hardLimit != null ? Decimal.max(0, new Decimal(quota.hardLimit).minus(quota.usage)) : null,
      upgradeUrl: this.store.upgradeUrl,
      topUpUrl: this.store.topUpUrlFor(request.customer),
    });
  }
}
