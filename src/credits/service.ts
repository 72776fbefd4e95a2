import type { Clock } from '../clock';
import { CustomerService } from '../customers/service';
import type { Customer } from '../customers/store';
import { recordAudit, type AuditActor } from '../db/audit';
import type { Pool } from '../db/pool';
import { inTransaction, type Queryable } from '../db/transaction';
import { spendTopUpDue, type AutoTopUpOutcome } from '../domain/credit-drawdown';
import type { CurrencyCode } from '../domain/currencies';
import { Decimal, formatMoney, toMinorUnits } from '../domain/money';
import { ok, refuse, type Result } from '../domain/result';
import { auditActorOf, type Actor } from '../keys/principal';
import { ProviderRejectedError, ProviderUnavailableError, type PaymentProvider, type ProviderCharge } from '../provider/payment-provider';
import type { CreditBalanceWatcher } from './balance-watcher';
import type { CreditExpiryTimers } from './expiry-timers';
import type { AutoTopUpInput, CreditGrantInput } from './input';
import {
  appendLedgerEntry,
  creditBalance,
  entriesForInvoice,
  findGrant,
  getAutoTopUp,
  getGrant,
  grantVoidOf,
  insertGrant,
  listGrants,
  listLedger,
  lockCreditLedger,
  lockGrant,
  setAutoTopUp,
  settleGrantPurchase,
  type AutoTopUp,
  type CreditGrant,
  type LedgerEntry,
  type NewGrant,
} from './store';

/** The provider idempotency key of a credit purchase: the grant is the business key. */
export const purchaseKeyFor = (grantId: string) => `meterflow-credit-grant-${grantId}`;
/** What the provider files a credit purchase under (its `invoiceId` field: our reference for the charge). */
export const purchaseRefFor = (grantId: string) => `credit-grant-${grantId}`;
/** An automatic top-up's grant reference: once per invoice whose drawdown triggered it. */
export const autoTopUpReferenceFor = (invoiceId: string) => `auto-top-up:${invoiceId}`;
/** An automatic top-up after an expiry: once per expired grant. */
export const expiryTopUpReferenceFor = (grantId: string) => `auto-top-up:expiry:${grantId}`;
/** An automatic top-up of a credit_only subscription's open period: once per balance priced against. */
export const spendTopUpReferenceFor = (subscriptionId: string, periodStart: string, available: string) =>
  `auto-top-up:spend:${subscriptionId}:${periodStart}:${available}`;

export type GrantRefusal =
  | 'unknown_customer'
  | 'promotional_restricted'
  | 'reference_reused'
  | 'expiry_in_past'
  | 'purchase_declined'
  | 'provider_unavailable'
  | 'provider_rejected'
  | 'expiry_unscheduled'
  | 'balance_unannounced';

/** The invoice whose finalization drew credits, as an automatic top-up needs it. */
export interface InvoiceDrawnOn {
  id: string;
  /** Internal customer id. */
  customerId: string;
  /** External id of the customer. */
  customer: string;
  currency: CurrencyCode;
}

/** What the billing workflow saw when a credit_only period's runway ran low. */
export interface SpendTopUpTrigger {
  /** Internal customer id. */
  customerId: string;
  /** External id of the customer. */
  customer: string;
  currency: CurrencyCode;
  subscriptionId: string;
  /** ISO 8601 start of the open period. */
  periodStart: string;
  /** The credit the open period was priced against, and the usage it priced. */
  available: string;
  spent: string;
}

export interface CreditBalance {
  customer: string;
  currency: CurrencyCode;
  /** The sum of the customer's ledger entries in the currency. */
  balance: string;
  /** Active grants with credit left, in draw order's inputs (newest first). */
  grants: CreditGrant[];
  autoTopUp: AutoTopUp | null;
}

export interface CreditDeps {
  pool: Pool;
  clock: Clock;
  provider: PaymentProvider;
  timers: CreditExpiryTimers;
  /** Told when a grant is credited; absent: nobody waits for the balance (tests, tools). */
  watcher?: CreditBalanceWatcher;
  customers?: CustomerService;
}

const sameTerms = (grant: CreditGrant, input: NewGrant) =>
  grant.source === input.source &&
  grant.currency === input.currency &&
  new Decimal(grant.amount).eq(input.amount) &&
  grant.priority === input.priority &&
  (grant.expiresAt?.getTime() ?? null) === (input.expiresAt?.getTime() ?? null);

/**
 * Prepaid credits as every adapter reaches them: grants (promotional, or purchased through the
 * payment provider under an idempotency key derived from the grant), balances and the ledger,
 * the automatic top-up, and expiry. A key restricted to one customer sees only its own.
 */
export class CreditService {
  private readonly customers: CustomerService;

  constructor(private readonly deps: CreditDeps) {
    this.customers = deps.customers ?? new CustomerService(deps.pool);
  }

  /**
   * Grants credit under the caller's reference. The same request again returns the grant
   * (created: false) and completes what a failure left undone: a purchase whose provider answer
   * was lost is asked again with the same idempotency key, an expiry timer not yet started is
   * started. Other terms under a used reference are a conflict.
   */
  async grant(
    actor: Actor,
    externalId: string,
    input: CreditGrantInput,
  ): Promise<Result<{ created: boolean; grant: CreditGrant }, GrantRefusal>> {
    const customer = await this.customers.get(actor, externalId);
    if (!customer.ok) return customer;
    // A customer's own key may buy credit for it, never give it free credit.
    if (input.source === 'promotional' && typeof actor !== 'string' && actor.customer)
      return refuse(
        'forbidden',
        'promotional_restricted',
        'A key restricted to a customer may purchase credit, not grant promotional credit.',
      );
    const expiresAt = input.expires_at === null ? null : new Date(input.expires_at);
    const now = this.deps.clock.now();
    const terms: NewGrant = {
      customerId: customer.value.id,
      reference: input.reference,
      source: input.source,
      currency: input.currency,
      amount: input.amount,
      priority: input.priority,
      expiresAt,
      actor: auditActorOf(actor),
    };
    const existing = await findGrant(this.deps.pool, customer.value.id, input.reference);
    if (!existing && expiresAt && expiresAt <= now)
      return refuse('invalid', 'expiry_in_past', `expires_at ${input.expires_at} is not in the future.`);
    const { created, grant } = existing ? { created: false, grant: existing } : await this.store(terms, now);
    // A grant already under this reference (found, or inserted by a concurrent request): its terms decide.
    if (!created && !sameTerms(grant, terms))
      return refuse('conflict', 'reference_reused', `Grant reference "${input.reference}" is already used with other terms.`, {
        existing_grant_id: grant.id,
      });
    return this.complete(grant, created, auditActorOf(actor), customer.value.externalId);
  }

  /**
   * The customer's balance in the currency (by default the customer's own), its grants with credit
   * left and its automatic top-up.
   */
  async balance(actor: Actor, externalId: string, currency?: CurrencyCode): Promise<Result<CreditBalance, 'unknown_customer'>> {
    const customer = await this.customers.get(actor, externalId);
    if (!customer.ok) return customer;
    return ok(await this.balanceOf(customer.value, currency ?? (customer.value.currency as CurrencyCode)));
  }

  private async balanceOf(customer: Customer, currency: CurrencyCode): Promise<CreditBalance> {
    const id = customer.id;
    const grants = await listGrants(this.deps.pool, id, currency);
    return {
      customer: customer.externalId,
      currency,
      balance: await creditBalance(this.deps.pool, id, currency),
      grants: grants.filter((g) => g.status === 'active' && new Decimal(g.remaining).gt(0)),
      autoTopUp: (await getAutoTopUp(this.deps.pool, id, currency)) ?? null,
    };
  }

  /** The customer's grants (any status), newest first. */
  async grants(actor: Actor, externalId: string, currency?: CurrencyCode): Promise<Result<CreditGrant[], 'unknown_customer'>> {
    const customer = await this.customers.get(actor, externalId);
    if (!customer.ok) return customer;
    return ok(await listGrants(this.deps.pool, customer.value.id, currency));
  }

  /** The customer's ledger, oldest entry first, `limit` entries after the entry id `after`. */
  async ledger(
    actor: Actor,
    externalId: string,
    query: { currency?: CurrencyCode; limit: number; after?: string },
  ): Promise<Result<LedgerEntry[], 'unknown_customer'>> {
    const customer = await this.customers.get(actor, externalId);
    if (!customer.ok) return customer;
    return ok(await listLedger(this.deps.pool, customer.value.id, query.currency, query.limit, query.after));
  }

  /** Sets the customer's automatic top-up in a currency, with an audit entry. */
  async setAutoTopUp(actor: Actor, externalId: string, input: AutoTopUpInput): Promise<Result<AutoTopUp, 'unknown_customer'>> {
    const customer = await this.customers.get(actor, externalId);
    if (!customer.ok) return customer;
    const id = customer.value.id;
    return inTransaction(this.deps.pool, async (client) => {
      const before = await setAutoTopUp(client, id, input, this.deps.clock.now());
      await recordAudit(client, {
        actor: auditActorOf(actor),
        action: 'credit.auto_top_up_set',
        subjectType: 'customer',
        subjectId: id,
        details: { currency: input.currency },
        ...(before ? { before: { threshold: before.threshold, amount: before.amount, enabled: before.enabled } } : {}),
        after: { threshold: input.threshold, amount: input.amount, enabled: input.enabled },
      });
      return ok((await getAutoTopUp(client, id, input.currency))!);
    });
  }

  /**
   * After an invoice drew credits: when the customer's automatic top-up is enabled in its currency
   * and the balance is below the threshold, purchases the set amount under the reference
   * `auto-top-up:<invoice id>`, so running it again tops up once. An unknown provider outcome is
   * thrown (ProviderUnavailableError): the caller retries and the same key is sent again.
   */
  async autoTopUp(invoice: InvoiceDrawnOn, actor: AuditActor): Promise<Result<AutoTopUpOutcome, 'provider_rejected'>> {
    const { id: invoiceId, customerId, currency } = invoice;
    return this.topUpWhen(
      { customerId, customer: invoice.customer, currency, reference: autoTopUpReferenceFor(invoiceId) },
      actor,
      async (setting, balance) =>
        new Decimal(balance).lt(setting.threshold) &&
        (await entriesForInvoice(this.deps.pool, invoiceId)).some((e) => e.kind === 'drawdown'),
    );
  }

  /**
   * After a grant expired: the same automatic top-up when the expiry left the balance below the
   * threshold, once per expired grant (reference `auto-top-up:expiry:<grant id>`).
   */
  async autoTopUpAfterExpiry(grantId: string, actor: AuditActor): Promise<Result<AutoTopUpOutcome, 'provider_rejected'>> {
    const grant = await getGrant(this.deps.pool, grantId);
    if (!grant) return ok({ outcome: 'not_needed', balance: '0' });
    return this.topUpWhen(
      { customerId: grant.customerId, customer: grant.customer, currency: grant.currency, reference: expiryTopUpReferenceFor(grantId) },
      actor,
      (setting, balance) => Promise.resolve(new Decimal(balance).lt(setting.threshold)),
    );
  }

  /**
   * For a `credit_only` subscription whose open period's usage (priced by the billing workflow)
   * leaves less credit than the threshold, or none: the automatic top-up, once per trigger. The
   * trigger is the credit the workflow priced against (`available`): the same balance running out
   * never tops up twice (a retry, a replay, a declined card asked again), a balance that moved (a
   * top-up, an expiry) is a new trigger.
   */
  async autoTopUpForSpend(trigger: SpendTopUpTrigger, actor: AuditActor): Promise<Result<AutoTopUpOutcome, 'provider_rejected'>> {
    return this.topUpWhen(
      {
        customerId: trigger.customerId,
        customer: trigger.customer,
        currency: trigger.currency,
        reference: spendTopUpReferenceFor(trigger.subscriptionId, trigger.periodStart, trigger.available),
      },
      actor,
      (setting) => Promise.resolve(spendTopUpDue(trigger.available, trigger.spent, setting.threshold)),
    );
  }

  /**
   * The automatic top-up under the trigger's reference: found, it is completed (a purchase whose
   * answer was lost is asked again under the same key); else, when the setting is enabled and
   * `due` says so, purchased. An unknown provider outcome is thrown (ProviderUnavailableError).
   */
  private async topUpWhen(
    trigger: { customerId: string; customer: string; currency: CurrencyCode; reference: string },
    actor: AuditActor,
    due: (setting: AutoTopUp, balance: string) => Promise<boolean>,
  ): Promise<Result<AutoTopUpOutcome, 'provider_rejected'>> {
    const { customerId, currency, reference } = trigger;
    const balance = () => creditBalance(this.deps.pool, customerId, currency);
    let grant = await findGrant(this.deps.pool, customerId, reference);
    if (!grant) {
      const setting = await getAutoTopUp(this.deps.pool, customerId, currency);
      const now = await balance();
      if (!setting?.enabled || !(await due(setting, now))) return ok({ outcome: 'not_needed', balance: now });
      grant = (
        await this.store(
          { customerId, reference, source: 'purchased', currency, amount: setting.amount, priority: 0, expiresAt: null, actor },
          this.deps.clock.now(),
        )
      ).grant;
    }
    const completed = await this.complete(grant, false, actor, trigger.customer);
    if (completed.ok) return ok({ outcome: 'topped_up', grantId: grant.id, balance: await balance() });
    if (completed.reason === 'purchase_declined') {
      const declined = (await getGrant(this.deps.pool, grant.id))!;
      return ok({ outcome: 'declined', grantId: grant.id, declineCode: declined.declineCode });
    }
    if (completed.reason === 'provider_unavailable') throw new ProviderUnavailableError(completed.message);
    // Charged and credited, but its expiry timer or the billing workflow could not be told: not a
    // rejection. Thrown, so the caller retries, finds the grant by its reference and finishes.
    if (completed.kind === 'unavailable') throw new Error(completed.message);
    return refuse('conflict', 'provider_rejected', completed.message);
  }

  /**
   * Voids a grant: one `grant_void` entry takes what is left of it out of the balance (what was
   * drawn stays drawn), audited. Voiding again returns the same entry (created: false). A grant
   * with nothing left (drawn, expired, or a purchase never credited) cannot be voided. A voided
   * purchase is not refunded: the provider's charge stands, and a refund is a separate matter.
   */
  async voidGrant(
    actor: Actor,
    externalId: string,
    grantId: string,
  ): Promise<Result<{ created: boolean; entry: LedgerEntry }, 'unknown_customer' | 'unknown_grant' | 'nothing_to_void'>> {
    const customer = await this.customers.get(actor, externalId);
    if (!customer.ok) return customer;
    const found = await getGrant(this.deps.pool, grantId);
    if (!found || found.customerId !== customer.value.id)
      return refuse('not_found', 'unknown_grant', `Customer ${externalId} has no grant ${grantId}.`);
    return inTransaction(this.deps.pool, async (client) => {
      await lockCreditLedger(client, found.customerId, found.currency);
      const voided = await grantVoidOf(client, grantId);
      if (voided) return ok({ created: false, entry: voided });
      const grant = (await getGrant(client, grantId))!;
      if (grant.status !== 'active' || !new Decimal(grant.remaining).gt(0))
        return refuse(
          'conflict',
          'nothing_to_void',
          `Grant ${grantId} has no credit left to void (${grant.status}, ${grant.remaining} left).`,
          {
            grant_id: grantId,
            remaining: grant.remaining,
          },
        );
      const audited = auditActorOf(actor);
      const entry = (await appendLedgerEntry(
        client,
        {
          grantId,
          customerId: grant.customerId,
          currency: grant.currency,
          kind: 'grant_void',
          amount: formatMoney(new Decimal(grant.remaining).neg(), grant.currency),
          invoiceId: null,
          actor: audited,
        },
        this.deps.clock.now(),
      ))!;
      await recordAudit(client, {
        actor: audited,
        action: 'credit.grant_voided',
        subjectType: 'credit_grant',
        subjectId: grantId,
        details: { ledger_entry_id: entry.id, amount: entry.amount, currency: entry.currency, source: grant.source, refunded: false },
        before: { remaining: grant.remaining },
        after: { remaining: '0', balance: entry.balanceAfter },
      });
      return ok({ created: true, entry });
    });
  }

  /**
   * Expires what is left of the grant: one expiry entry (keyed by the grant), so expiring again
   * writes nothing. The caller (the grant's expiry timer) decides it is time. Returns what expired.
   */
  async expire(grantId: string, actor: AuditActor): Promise<{ expired: string }> {
    return inTransaction(this.deps.pool, async (client) => {
      const found = await getGrant(client, grantId);
      if (!found || found.status !== 'active') return { expired: '0' };
      await lockCreditLedger(client, found.customerId, found.currency);
      const grant = (await getGrant(client, grantId))!;
      if (!new Decimal(grant.remaining).gt(0)) return { expired: '0' };
      const entry = await appendLedgerEntry(
        client,
        {
          grantId,
          customerId: grant.customerId,
          currency: grant.currency,
          kind: 'expiry',
          amount: formatMoney(new Decimal(grant.remaining).neg(), grant.currency),
          invoiceId: null,
          actor,
        },
        this.deps.clock.now(),
      );
      if (!entry) return { expired: '0' };
      await recordAudit(client, {
        actor,
        action: 'credit.expired',
        subjectType: 'credit_grant',
        subjectId: grantId,
        details: {
          ledger_entry_id: entry.id,
          amount: entry.amount,
          currency: entry.currency,
          expired_at: grant.expiresAt?.toISOString() ?? null,
        },
        before: { remaining: grant.remaining },
        after: { remaining: '0', balance: entry.balanceAfter },
      });
      return { expired: formatMoney(new Decimal(grant.remaining), grant.currency) };
    });
  }

  /** Stores a new grant; a promotional one is credited to the ledger in the same transaction. */
  private store(terms: NewGrant, now: Date): Promise<{ created: boolean; grant: CreditGrant }> {
    return inTransaction(this.deps.pool, async (client) => {
      const stored = await insertGrant(client, terms, purchaseKeyFor, now);
      if (stored.created && stored.grant.source === 'promotional') await this.credit(client, stored.grant, terms.actor, now);
      return stored.created ? { created: true, grant: (await getGrant(client, stored.grant.id))! } : stored;
    });
  }

  /** The grant's ledger entry and its audit entry; the caller has made it active. */
  private async credit(client: Queryable, grant: CreditGrant, actor: AuditActor, now: Date): Promise<void> {
    await lockCreditLedger(client, grant.customerId, grant.currency);
    const entry = await appendLedgerEntry(
      client,
      {
        grantId: grant.id,
        customerId: grant.customerId,
        currency: grant.currency,
        kind: 'grant',
        amount: grant.amount,
        invoiceId: null,
        actor,
      },
      now,
    );
    if (!entry) return;
    await recordAudit(client, {
      actor,
      action: grant.source === 'purchased' ? 'credit.purchased' : 'credit.granted',
      subjectType: 'credit_grant',
      subjectId: grant.id,
      details: {
        customer_id: grant.customerId,
        reference: grant.reference,
        source: grant.source,
        amount: grant.amount,
        currency: grant.currency,
        priority: grant.priority,
        expires_at: grant.expiresAt?.toISOString() ?? null,
        ledger_entry_id: entry.id,
        ...(grant.providerChargeId ? { provider_charge_id: grant.providerChargeId } : {}),
      },
      after: { balance: entry.balanceAfter },
    });
  }

  /** Completes a stored grant: charges a pending purchase, then starts the expiry timer of an active grant that expires. */
  private async complete(
    grant: CreditGrant,
    created: boolean,
    actor: AuditActor,
    customerExternalId: string,
  ): Promise<Result<{ created: boolean; grant: CreditGrant }, GrantRefusal>> {
    let current = grant;
    if (current.status === 'pending') {
      let charge: ProviderCharge;
      try {
        charge = await this.chargeAtProvider(current);
      } catch (err) {
        if (err instanceof ProviderUnavailableError)
          return refuse(
            'unavailable',
            'provider_unavailable',
            `Grant ${current.id} is saved as pending: the payment provider did not answer. Repeat the request with the same reference.`,
            { grant_id: current.id },
          );
        if (err instanceof ProviderRejectedError)
          return refuse(
            'conflict',
            'provider_rejected',
            `The payment provider rejected the purchase of grant ${current.id}: ${err.message}.`,
            {
              grant_id: current.id,
            },
          );
        throw err;
      }
      current = await this.recordPurchase(current.id, charge, actor);
    }
    if (current.status === 'declined')
      return refuse('conflict', 'purchase_declined', `The payment provider declined the purchase (${current.declineCode ?? 'declined'}).`, {
        grant_id: current.id,
        decline_code: current.declineCode,
      });
    if (current.expiresAt) {
      try {
        await this.deps.timers.schedule({ id: current.id, expiresAt: current.expiresAt });
      } catch (err) {
        return refuse(
          'unavailable',
          'expiry_unscheduled',
          `Grant ${current.id} is credited, but its expiry timer could not be started (${err instanceof Error ? err.message : String(err)}). Repeat the request with the same reference.`,
          { grant_id: current.id },
        );
      }
    }
    if (current.status === 'active' && this.deps.watcher) {
      try {
        await this.deps.watcher.grew({ externalId: customerExternalId });
      } catch (err) {
        return refuse(
          'unavailable',
          'balance_unannounced',
          `Grant ${current.id} is credited, but the billing workflow could not be told (${err instanceof Error ? err.message : String(err)}). Repeat the request with the same reference.`,
          { grant_id: current.id },
        );
      }
    }
    return ok({ created, grant: current });
  }

  /** The provider's own record first (a success under this grant settles it), else the charge under the grant's key. */
  private async chargeAtProvider(grant: CreditGrant): Promise<ProviderCharge> {
    const earlier = (await this.deps.provider.listCharges({ invoiceId: purchaseRefFor(grant.id) })).find((c) => c.status === 'succeeded');
    return (
      earlier ??
      this.deps.provider.charge({
        idempotencyKey: grant.idempotencyKey!,
        customerId: grant.customerId,
        invoiceId: purchaseRefFor(grant.id),
        amountMinor: toMinorUnits(grant.amount, grant.currency),
        currency: grant.currency,
        description: `Prepaid credit ${grant.reference}`,
      })
    );
  }

  private recordPurchase(grantId: string, charge: ProviderCharge, actor: AuditActor): Promise<CreditGrant> {
    return inTransaction(this.deps.pool, async (client) => {
      const grant = (await lockGrant(client, grantId))!;
      if (grant.status !== 'pending') return grant;
      const now = this.deps.clock.now();
      if (charge.status === 'declined') {
        await settleGrantPurchase(client, grantId, {
          status: 'declined',
          providerChargeId: charge.id,
          declineCode: charge.declineCode ?? null,
        });
        await recordAudit(client, {
          actor,
          action: 'credit.purchase_declined',
          subjectType: 'credit_grant',
          subjectId: grantId,
          details: { provider_charge_id: charge.id, decline_code: charge.declineCode ?? null, idempotency_key: charge.idempotencyKey },
        });
      } else {
        await settleGrantPurchase(client, grantId, { status: 'active', providerChargeId: charge.id, declineCode: null });
        await this.credit(client, (await getGrant(client, grantId))!, actor, now);
      }
      return (await getGrant(client, grantId))!;
    });
  }
}
