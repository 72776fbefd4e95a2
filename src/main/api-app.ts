import type { Express } from 'express';
import type { Logger } from 'pino';
import { createApp } from '../api/app';
import { authenticate } from '../api/authenticate';
import { createApiMetrics } from '../api/metrics';
import { couponsRouter } from '../api/routes/coupons';
import { creditsRouter } from '../api/routes/credits';
import { customersRouter } from '../api/routes/customers';
import { entitlementsRouter } from '../api/routes/entitlements';
import { eventsRouter } from '../api/routes/events';
import { invoicesRouter } from '../api/routes/invoices';
import { keysRouter } from '../api/routes/keys';
import type { ReadinessCheck } from '../api/routes/health';
import { metersRouter } from '../api/routes/meters';
import { plansRouter } from '../api/routes/plans';
import { portalRouter } from '../api/routes/portal';
import { portalSessionsRouter } from '../api/routes/portal-sessions';
import { pricingRouter } from '../api/routes/pricing';
import { reconciliationsRouter } from '../api/routes/reconciliations';
import { subscriptionsRouter } from '../api/routes/subscriptions';
import { taxRatesRouter } from '../api/routes/tax-rates';
import { usageRouter } from '../api/routes/usage';
import { webhookEndpointsRouter } from '../api/routes/webhooks';
import type { Clock } from '../clock';
import { CreditService } from '../credits/service';
import { temporalCreditBalanceWatcher } from '../credits/temporal-balance-watcher';
import { temporalCreditExpiryTimers } from '../credits/temporal-expiry-timers';
import type { Pool } from '../db/pool';
import type { EventTimePolicy } from '../domain/metering/event-time';
import type { WebhookTargetPolicy } from '../domain/webhook-target-policy';
import { CouponService } from '../coupons/service';
import { EntitlementService } from '../entitlements/service';
import type { EntitlementStore } from '../entitlements/store';
import { InvoiceService } from '../invoices/service';
import { ChargeHistory } from '../payments/charge-history';
import type { Keys } from '../keys/keys';
import type { PaymentProvider } from '../provider/payment-provider';
import { MeterService } from '../meters/service';
import { createMetering } from '../metering/metering';
import { UsageService } from '../metering/usage-service';
import { ApiProcessCount } from '../metering/api-process-count';
import { UsageSignaler } from '../metering/usage-signaler';
import { PlanService } from '../plans/service';
import { PortalSessionService } from '../portal/service';
import { PortalSessionVerifier, credentialVerifier } from '../portal/verifier';
import { ReconciliationService } from '../reconciliations/service';
import { SubscriptionService } from '../subscriptions/service';
import { TaxRateService } from '../taxes/service';
import { temporalSubscriptionLifecycle, type BillingWorkflowOptions } from '../subscriptions/temporal-lifecycle';
import { WebhookEndpointService } from '../webhooks/service';

export interface ApiAppDeps {
  pool: Pool;
  keys: Keys;
  clock: Clock;
  logger: Logger;
  readiness: Record<string, ReadinessCheck>;
  timePolicy: EventTimePolicy;
  /** Blocked meters, kept current by the process's entitlement listener (src/entitlements). */
  entitlements: EntitlementStore;
  /** With Temporal: subscriptions drive billing workflows, and stored usage is signalled to them. */
  billing?: BillingWorkflowOptions;
  /** Where webhook endpoints may point; without it, public addresses only. */
  webhookTargets?: WebhookTargetPolicy;
  /** With it (and `billing`, for expiry timers): prepaid credits, purchased through this provider. */
  provider?: PaymentProvider;
  /**
   * How stored usage reaches the billing workflows (with `billing`): a slow report every
   * `reportIntervalSeconds` (default 300), at once when a meter comes within `signalMargin`
   * (default 0.1) of its next decision point (config USAGE_REPORT_INTERVAL_SECONDS, USAGE_SIGNAL_MARGIN).
   */
  usageSignals?: { reportIntervalSeconds?: number; signalMargin?: number };
  /** How many earlier invoices late usage may adjust (config LATE_USAGE_LOOKBACK_INVOICES, default 3): the upcoming invoice says what the draft will. */
  lateUsageLookbackInvoices?: number;
  /** Where the customer portal sends a customer whose meter is blocked (config PORTAL_UPGRADE_URL); default the entitlements' upgrade URL. */
  portalUpgradeUrl?: string;
}

export interface ApiApp {
  app: Express;
  /** Flushes what is still owed to the workflows. */
  stop(): Promise<void>;
}

/** The whole API as every entry point, test and benchmark runs it: one composition, one place. */
export function buildApiApp(deps: ApiAppDeps): ApiApp {
  const metrics = createApiMetrics();
  const signals = deps.usageSignals;
  const processes = deps.billing ? new ApiProcessCount(deps.pool, deps.logger) : undefined;
  const signaler =
    deps.billing &&
    new UsageSignaler({
      client: deps.billing.client,
      logger: deps.logger,
      registry: metrics.registry,
      quotaOf: (customerId, meter) => deps.entitlements.quotaOf(customerId, meter),
      producers: () => processes?.value ?? 1,
      ...(signals?.reportIntervalSeconds !== undefined ? { reportIntervalMs: signals.reportIntervalSeconds * 1000 } : {}),
      ...(signals?.signalMargin !== undefined ? { signalMargin: signals.signalMargin } : {}),
    });
  const metering = createMetering({
    pool: deps.pool,
    clock: deps.clock,
    timePolicy: deps.timePolicy,
    registry: metrics.registry,
    entitlements: deps.entitlements,
    ...(signaler ? { onStored: (usage) => signaler.record(usage) } : {}),
  });
  const { customers } = metering;
  const meters = new MeterService(deps.pool, metering.catalog);
  const billingRouters = deps.billing
    ? [
        subscriptionsRouter({
          subscriptions: new SubscriptionService({
            pool: deps.pool,
            clock: deps.clock,
            customers,
            lifecycle: temporalSubscriptionLifecycle(deps.billing),
          }),
          clock: deps.clock,
        }),
        reconciliationsRouter(
          new ReconciliationService({
            pool: deps.pool,
            clock: deps.clock,
            client: deps.billing.client,
            taskQueue: deps.billing.taskQueue,
            customers,
            logger: deps.logger,
          }),
        ),
        ...(deps.provider
          ? [
              creditsRouter(
                new CreditService({
                  pool: deps.pool,
                  clock: deps.clock,
                  provider: deps.provider,
                  timers: temporalCreditExpiryTimers({ client: deps.billing.client, taskQueue: deps.billing.taskQueue }),
                  watcher: temporalCreditBalanceWatcher(deps.billing.client),
                  customers,
                }),
              ),
            ]
          : []),
      ]
    : [];
  const app = createApp({
    logger: deps.logger,
    readiness: deps.readiness,
    authenticate: authenticate({
      verifier: credentialVerifier(
        deps.keys.verifier,
        new PortalSessionVerifier({ pool: deps.pool, peppers: deps.keys.peppers, clock: deps.clock }),
      ),
      limiter: deps.keys.limiter,
      failures: deps.keys.failures,
      logger: deps.logger.child({ component: 'api-keys' }),
    }),
    routers: [
      customersRouter(customers),
      metersRouter(meters),
      eventsRouter(metering.ingest, deps.clock),
      usageRouter(new UsageService(deps.pool, customers, meters)),
      entitlementsRouter(new EntitlementService(deps.entitlements, customers, metering.catalog)),
      pricingRouter,
      plansRouter({ plans: new PlanService(deps.pool) }),
      webhookEndpointsRouter({
        webhooks: new WebhookEndpointService({ pool: deps.pool, clock: deps.clock, customers, targets: deps.webhookTargets }),
      }),
      invoicesRouter(new InvoiceService(deps.pool, deps.clock, customers), new ChargeHistory(deps.pool), {
        lookbackInvoices: deps.lateUsageLookbackInvoices ?? 3,
      }),
      couponsRouter(new CouponService(deps.pool, deps.clock, customers)),
      taxRatesRouter(new TaxRateService(deps.pool, deps.clock, customers)),
      ...billingRouters,
      keysRouter(deps.keys.service, deps.clock),
      portalSessionsRouter(new PortalSessionService({ pool: deps.pool, peppers: deps.keys.peppers, clock: deps.clock, customers }), {
        upgradeUrl: deps.portalUpgradeUrl ?? deps.entitlements.upgradeUrl,
      }),
      portalRouter(),
    ],
    metrics,
  });
  return {
    app,
    stop: async () => {
      processes?.stop();
      await signaler?.stop();
    },
  };
}
