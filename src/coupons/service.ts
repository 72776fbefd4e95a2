import type { Clock } from '../clock';
import { CustomerService } from '../customers/service';
import type { Pool } from '../db/pool';
import { inTransaction } from '../db/transaction';
import { canonicalJson } from '../domain/metering/canonical-json';
import type { Coupon } from '../domain/discounts';
import { ok, refuse, type Ok, type Refusal, type Result } from '../domain/result';
import { auditActorOf, type Actor } from '../keys/principal';
import { getMeter } from '../meters/store';
import { getSubscription } from '../subscriptions/store';
import {
  applicationsOf,
  applyCoupon,
  couponTerms,
  createCoupon,
  getCoupon,
  listCoupons,
  type CouponApplication,
  type StoredCoupon,
} from './store';

/** The code is taken by other terms; `existing` is the stored coupon, for adapters that may show it. */
export interface CouponExists extends Refusal<'coupon_exists'> {
  details: { existing: StoredCoupon };
}

const unknownCoupon = (code: string) => refuse('invalid', 'unknown_coupon', `No coupon "${code}".`);

/**
 * Coupons (defined by admins, immutable like plans) and their applications to customers. Which
 * invoices they discount is decided by the invoice path (src/invoices/after-pricing.ts); the
 * periods used are counted from redemptions written at finalization.
 */
export class CouponService {
  constructor(
    private readonly pool: Pool,
    private readonly clock: Clock,
    private readonly customers = new CustomerService(pool),
  ) {}

  /** Creates the coupon; the same terms again return it (created: false); other terms under its code are a conflict. */
  async create(
    actor: Actor,
    coupon: Coupon,
  ): Promise<Ok<{ created: boolean; coupon: StoredCoupon }> | CouponExists | Refusal<'unknown_meter'>> {
    for (const meter of coupon.meters ?? []) {
      if (!(await getMeter(this.pool, meter))) return refuse('invalid', 'unknown_meter', `No meter "${meter}".`);
    }
    const result = await inTransaction(this.pool, (client) => createCoupon(client, coupon, auditActorOf(actor), this.clock.now()));
    if (result.created) return ok({ created: true, coupon: result.coupon });
    if (canonicalJson(couponTerms(result.existing)) === canonicalJson(coupon)) return ok({ created: false, coupon: result.existing });
    return {
      ...refuse(
        'conflict',
        'coupon_exists',
        `Coupon "${coupon.code}" already exists with other terms; create the new terms under a new code.`,
      ),
      details: { existing: result.existing },
    };
  }

  async get(code: string): Promise<Result<StoredCoupon, 'unknown_coupon'>> {
    const coupon = await getCoupon(this.pool, code);
    return coupon ? ok(coupon) : refuse('not_found', 'unknown_coupon', `No coupon "${code}".`);
  }

  list(limit: number, after?: string): Promise<StoredCoupon[]> {
    return listCoupons(this.pool, limit, after);
  }

  /**
   * Applies a coupon to a customer, or to one of its subscriptions only. Applying it again returns
   * the same application (created: false). A fixed amount must be in the customer's currency.
   */
  async apply(
    actor: Actor,
    externalId: string,
    input: { coupon: string; subscriptionId: string | null },
  ): Promise<
    Result<
      { created: boolean; application: CouponApplication },
      'unknown_customer' | 'unknown_coupon' | 'unknown_subscription' | 'currency_mismatch'
    >
  > {
    const customer = await this.customers.get(actor, externalId);
    if (!customer.ok) return customer;
    const coupon = await getCoupon(this.pool, input.coupon);
    if (!coupon) return unknownCoupon(input.coupon);
    if (coupon.discount.type === 'fixed_amount' && coupon.discount.currency !== customer.value.currency) {
      return refuse(
        'invalid',
        'currency_mismatch',
        `Coupon "${coupon.code}" takes ${coupon.discount.currency} off; customer "${externalId}" is billed in ${customer.value.currency}.`,
      );
    }
    if (input.subscriptionId !== null) {
      const subscription = await getSubscription(this.pool, input.subscriptionId);
      if (!subscription || subscription.customer.id !== customer.value.id)
        return refuse('invalid', 'unknown_subscription', `Customer "${externalId}" has no subscription ${input.subscriptionId}.`);
    }
    const applied = await inTransaction(this.pool, (client) =>
      applyCoupon(
        client,
        { couponCode: coupon.code, customerId: customer.value.id, subscriptionId: input.subscriptionId },
        auditActorOf(actor),
        this.clock.now(),
      ),
    );
    return ok(applied);
  }

  /** The customer's coupon applications with the periods each has used. */
  async applications(actor: Actor, externalId: string): Promise<Result<CouponApplication[], 'unknown_customer'>> {
    const customer = await this.customers.get(actor, externalId);
    if (!customer.ok) return customer;
    return ok(await applicationsOf(this.pool, customer.value.id));
  }
}
