import type { CustomerService } from '../customers/service';
import type { Customer } from '../customers/store';
import type { Pool } from '../db/pool';
import { ok, type Result } from '../domain/result';
import type { Actor } from '../keys/principal';
import type { MeterService } from '../meters/service';
import type { StoredMeter } from '../meters/store';
import { queryUsage, type Granularity, type Usage } from './usage-query';

export interface UsageRequest {
  /** External id of the customer. */
  customer: string;
  /** Meter code. */
  meter: string;
  /** Half-open range [from, to). */
  from: Date;
  to: Date;
  granularity?: Granularity;
}

export interface CustomerUsage {
  customer: Customer;
  meter: StoredMeter;
  usage: Usage;
}

/** A customer's usage of a meter, as every adapter asks for it; another customer's is absent to a restricted key. */
export class UsageService {
  constructor(
    private readonly pool: Pool,
    private readonly customers: CustomerService,
    private readonly meters: MeterService,
  ) {}

  async read(actor: Actor, request: UsageRequest): Promise<Result<CustomerUsage, 'unknown_customer' | 'unknown_meter'>> {
    const [customer, meter] = await Promise.all([this.customers.get(actor, request.customer), this.meters.get(request.meter)]);
    if (!customer.ok) return customer;
    if (!meter.ok) return meter;
    const usage = await queryUsage(this.pool, {
      customerId: customer.value.id,
      meter: meter.value,
      from: request.from,
      to: request.to,
      ...(request.granularity ? { granularity: request.granularity } : {}),
    });
    return ok({ customer: customer.value, meter: meter.value, usage });
  }
}
