import { recordAudit, type AuditActor } from '../db/audit';
import type { Queryable } from '../db/transaction';
import type { Coupon, CouponToApply } from '../domain/discounts';

export type StoredCoupon = Coupon & { createdAt: Date };

interface CouponRow {
  code: string;
  name: string;
  discount_type: Coupon['discount']['type'];
  percent_off: string | null;
  amount_off: string | null;
  currency: string | null;
  duration: Coupon['duration']['kind'];
  duration_periods: number | null;
  meters: string[] | null;
  base_fee: boolean | null;
  created_at: Date;
}

const couponColumns =
  'c.code, c.name, c.discount_type, c.percent_off::text, c.amount_off::text, c.currency, c.duration, c.duration_periods, c.meters, c.base_fee, c.created_at';

/** Rows were validated by the coupon schema before they were written and never change: read back as created. */
function toCoupon(r: CouponRow): StoredCoupon {
  return {
    code: r.code,
    name: r.name,
    discount:
      r.discount_type === 'percentage'
        ? { type: 'percentage', percent_off: r.percent_off! }
        : {
            type: 'fixed_amount',
            amount_off: r.amount_off!,
            currency: r.currency as Extract<Coupon['discount'], { currency: string }>['currency'],
          },
    duration: r.duration === 'repeating' ? { kind: 'repeating', periods: r.duration_periods! } : { kind: r.duration },
    ...(r.meters === null ? {} : { meters: r.meters }),
    ...(r.base_fee ? { base_fee: true as const } : {}),
    createdAt: r.created_at,
  };
}

/** A stored coupon's terms, as created (what an identical retry is compared with). */
export const couponTerms = ({ createdAt: _createdAt, ...coupon }: StoredCoupon): Coupon => coupon;

export type CreateCouponResult = { created: true; coupon: StoredCoupon } | { created: false; existing: StoredCoupon };

/** Stores a validated coupon with its audit entry, or returns the coupon that already has the code. Run in a transaction. */
export async function createCoupon(db: Queryable, coupon: Coupon, actor: AuditActor, now: Date): Promise<CreateCouponResult> {
  const d = coupon.discount;
  const { rows } = await db.query<CouponRow>(
    `insert into coupons as c (code, name, discount_type, percent_off, amount_off, currency, duration, duration_periods, meters, base_fee, created_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) on conflict (code) do nothing returning ${couponColumns}`,
    [
      coupon.code,
      coupon.name,
      d.type,
      d.type === 'percentage' ? d.percent_off : null,
      d.type === 'fixed_amount' ? d.amount_off : null,
      d.type === 'fixed_amount' ? d.currency : null,
      coupon.duration.kind,
      coupon.duration.kind === 'repeating' ? coupon.duration.periods : null,
      coupon.meters ?? null,
      coupon.base_fee ?? null,
      now,
    ],
  );
  if (!rows[0]) return { created: false, existing: (await getCoupon(db, coupon.code))! };
  await recordAudit(db, { actor, action: 'coupon.created', subjectType: 'coupon', subjectId: coupon.code, details: { ...coupon } });
  return { created: true, coupon: toCoupon(rows[0]) };
}

export async function getCoupon(db: Queryable, code: string): Promise<StoredCoupon | undefined> {
  const { rows } = await db.query<CouponRow>(`select ${couponColumns} from coupons c where c.code = $1`, [code]);
  return rows[0] && toCoupon(rows[0]);
}

export async function listCoupons(db: Queryable, limit: number, after?: string): Promise<StoredCoupon[]> {
  const { rows } = await db.query<CouponRow>(
    `select ${couponColumns} from coupons c where ($2::text is null or c.code > $2) order by c.code limit $1`,
    [limit, after ?? null],
  );
  return rows.map(toCoupon);
}

export interface CouponApplication {
  id: string;
  coupon: StoredCoupon;
  customerId: string;
  subscriptionId: string | null;
  createdAt: Date;
  /** Finalized, not void, invoices it has discounted. */
  periodsUsed: number;
  /** Drafts that discount with it and will use a period when finalized. */
  periodsReserved: number;
}

type ApplicationRow = CouponRow & {
  application_id: string;
  customer_id: string;
  subscription_id: string | null;
  applied_at: Date;
  periods_used: string;
  periods_reserved: string;
};

/**
 * periods_used: finalized invoices it discounted (redemptions), not void: a void invoice collected
 * nothing. periods_reserved: other drafts of the customer that discount with it now; they use a
 * period when finalized, so a draft built meanwhile must not count on that period too.
 */
const applicationSelect = (exceptInvoice: string) => `
  select a.id as application_id, a.customer_id, a.subscription_id, a.created_at as applied_at, ${couponColumns},
         (select count(*) from coupon_redemptions r join invoices i on i.id = r.invoice_id
           where r.application_id = a.id and i.status <> 'void' and (${exceptInvoice}::uuid is null or i.id <> ${exceptInvoice}::uuid)) as periods_used,
         (select count(*) from invoices i
           where i.customer_id = a.customer_id and i.status = 'draft' and (${exceptInvoice}::uuid is null or i.id <> ${exceptInvoice}::uuid)
             and exists (select 1 from invoice_lines l where l.invoice_id = i.id and l.coupon_application_id = a.id)) as periods_reserved
    from coupon_applications a join coupons c on c.code = a.coupon_code`;

const toApplication = (r: ApplicationRow): CouponApplication => ({
  id: r.application_id,
  coupon: toCoupon(r),
  customerId: r.customer_id,
  subscriptionId: r.subscription_id,
  createdAt: r.applied_at,
  periodsUsed: Number(r.periods_used),
  periodsReserved: Number(r.periods_reserved),
});

/** The customer's coupon applications, oldest first (the order they discount in). */
export async function applicationsOf(db: Queryable, customerId: string, exceptInvoice?: string): Promise<CouponApplication[]> {
  const { rows } = await db.query<ApplicationRow>(`${applicationSelect('$2')} where a.customer_id = $1 order by a.created_at, a.id`, [
    customerId,
    exceptInvoice ?? null,
  ]);
  return rows.map(toApplication);
}

export type ApplyCouponResult = { created: boolean; application: CouponApplication };

/** Applies a coupon to a customer (or one subscription), with its audit entry; the same again returns it. Run in a transaction. */
export async function applyCoupon(
  db: Queryable,
  input: { couponCode: string; customerId: string; subscriptionId: string | null },
  actor: AuditActor,
  now: Date,
): Promise<ApplyCouponResult> {
  const { rows } = await db.query<{ id: string }>(
    `insert into coupon_applications (coupon_code, customer_id, subscription_id, created_at) values ($1, $2, $3, $4)
     on conflict do nothing returning id`,
    [input.couponCode, input.customerId, input.subscriptionId, now],
  );
  const created = rows[0] !== undefined;
  if (created) {
    await recordAudit(db, {
      actor,
      action: 'coupon.applied',
      subjectType: 'coupon_application',
      subjectId: rows[0]!.id,
      details: { coupon: input.couponCode, customer_id: input.customerId, subscription_id: input.subscriptionId },
    });
  }
  const application = (await applicationsOf(db, input.customerId)).find(
    (a) => a.coupon.code === input.couponCode && a.subscriptionId === input.subscriptionId,
  )!;
  return { created, application };
}

/**
 * The applications that may still discount an invoice of this subscription: for the customer or
 * this subscription, with periods left after those used and those other drafts reserve (not
 * counting the invoice being redrafted itself). The caller holds the customer's invoicing lock.
 */
export async function couponsToApply(
  db: Queryable,
  customerId: string,
  subscriptionId: string,
  draftId: string | undefined,
): Promise<CouponToApply[]> {
  return (await applicationsOf(db, customerId, draftId))
    .filter((a) => a.subscriptionId === null || a.subscriptionId === subscriptionId)
    .filter((a) => {
      const d = a.coupon.duration;
      return d.kind === 'forever' || a.periodsUsed + a.periodsReserved < (d.kind === 'once' ? 1 : d.periods);
    })
    .map((a) => ({ applicationId: a.id, coupon: couponTerms(a.coupon) }));
}

/**
 * Records that the invoice used a period of every coupon application its discount lines name, with
 * an audit entry each, in the transaction that finalizes it. Idempotent: keyed by (application, invoice).
 */
export async function recordRedemptions(db: Queryable, invoiceId: string, actor: AuditActor, now: Date): Promise<void> {
  const { rows } = await db.query<{ application_id: string; coupon_code: string; discounted: string }>(
    `insert into coupon_redemptions (application_id, invoice_id, redeemed_at)
     select l.coupon_application_id, l.invoice_id, $2 from invoice_lines l
      where l.invoice_id = $1 and l.coupon_application_id is not null group by l.coupon_application_id, l.invoice_id
     on conflict do nothing
     returning application_id, (select coupon_code from coupon_applications a where a.id = application_id) as coupon_code,
               (select sum(amount)::text from invoice_lines l where l.invoice_id = $1 and l.coupon_application_id = application_id) as discounted`,
    [invoiceId, now],
  );
  for (const r of rows) {
    await recordAudit(db, {
      actor,
      action: 'coupon.redeemed',
      subjectType: 'coupon_application',
      subjectId: r.application_id,
      details: { coupon: r.coupon_code, invoice_id: invoiceId, amount: r.discounted },
    });
  }
}

/** Per invoice, the coupon applications its discount lines name, oldest first, with the terms they discounted by. */
export async function couponsOfInvoices(db: Queryable, invoiceIds: string[]): Promise<Map<string, CouponToApply[]>> {
  const { rows } = await db.query<ApplicationRow & { invoice_id: string }>(
    `select u.invoice_id, x.* from (select distinct invoice_id, coupon_application_id from invoice_lines
                                     where invoice_id = any($1) and coupon_application_id is not null) u
       cross join lateral (${applicationSelect('null')} where a.id = u.coupon_application_id) x
      order by x.applied_at, x.application_id`,
    [invoiceIds],
  );
  const byInvoice = new Map<string, CouponToApply[]>();
  for (const r of rows) {
    const coupon = { applicationId: r.application_id, coupon: couponTerms(toCoupon(r)) };
    const coupons = byInvoice.get(r.invoice_id);
    if (coupons) coupons.push(coupon);
    else byInvoice.set(r.invoice_id, [coupon]);
  }
  return byInvoice;
}
