import { WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Logger } from 'pino';
import type { Clock } from '../clock';
import type { CustomerService } from '../customers/service';
import type { Pool } from '../db/pool';
import type { ReconciliationScope } from '../domain/reconciliation-input';
import { ok, refuse, type Refusal, type Result } from '../domain/result';
import { auditActorOf, seesCustomerId, type Actor } from '../keys/principal';
import {
  approveSignal,
  dismissSignal,
  reconciliationWorkflow,
  reconciliationWorkflowIdFor,
  retrySignal,
} from '../workflows/reconciliation';
import {
  coversScope,
  creditNotesOfRun,
  getRun,
  listFindings,
  recordStart,
  type CreditNote,
  type Finding,
  type ReconciliationRun,
} from './store';

export interface ReconciliationServiceDeps {
  pool: Pool;
  clock: Clock;
  /** Starts and signals the runs' workflows. */
  client: Client;
  taskQueue: string;
  customers: CustomerService;
  logger: Logger;
}

/** A run as its report shows it: the run, every finding in the order found, and the credit notes issued. */
export interface ReconciliationReport {
  run: ReconciliationRun;
  findings: Finding[];
  creditNotes: CreditNote[];
}

/** The run a start or a decision concerns; its id is the Temporal workflow id. */
export interface RunRef {
  id: string;
}

type Decision = 'approve' | 'retry' | 'dismiss';

type TemporalUnavailable = 'temporal_unavailable';
export type StartRefusal = 'unknown_customer' | 'run_scope_conflict' | TemporalUnavailable;
export type DecisionRefusal = 'unknown_run' | 'run_closed' | 'run_not_running' | TemporalUnavailable;

/**
 * Reconciliation runs as every adapter drives them: a run is the reconciliationWorkflow under
 * the id `reconcile/<period start>/<customer or all>`, and its report lives in Postgres. The
 * decisions are signals to that workflow, which does the work (src/activities/reconcile.ts).
 */
export class ReconciliationService {
  constructor(private readonly deps: ReconciliationServiceDeps) {}

  /**
   * Starts the scope's run, or finds it going (a retried request must not start a second one).
   * A run id already used for another period end is refused: one id, one scope.
   */
  async start(actor: Actor, scope: ReconciliationScope): Promise<Result<RunRef, StartRefusal>> {
    let customerId: string | null = null;
    if (scope.customer !== null) {
      const customer = await this.deps.customers.get(actor, scope.customer, 'reference');
      if (!customer.ok) return customer;
      customerId = customer.value.id;
    }
    const id = reconciliationWorkflowIdFor(scope);
    const runScope = { periodStart: scope.start, periodEnd: scope.end, customerId };
    const existing = await getRun(this.deps.pool, id);
    if (existing && !coversScope(existing, runScope)) {
      return refuse(
        'conflict',
        'run_scope_conflict',
        `Run ${id} reconciles until ${existing.periodEnd.toISOString()}; a run per period start and customer.`,
        { id },
      );
    }
    const startedBy = auditActorOf(actor);
    const requestedAt = this.deps.clock.now();
    try {
      await this.deps.client.workflow.start(reconciliationWorkflow, {
        workflowId: id,
        taskQueue: this.deps.taskQueue,
        args: [
          {
            period_start: scope.start.toISOString(),
            period_end: scope.end.toISOString(),
            ...(scope.customer === null ? {} : { customer: scope.customer }),
            auto_approve: scope.autoApprove,
          },
        ],
        // A retried request finds the run going instead of failing or starting a second one.
        workflowIdConflictPolicy: 'USE_EXISTING',
        memo: { started_by: startedBy },
      });
    } catch (err) {
      return this.temporalUnavailable(err, 'start the reconciliation');
    }
    // Recorded here too, so the report is there (and current) as soon as the caller is answered; the workflow's first activity finds it.
    await recordStart(this.deps.pool, id, runScope, startedBy, requestedAt, this.deps.clock.now());
    return ok({ id });
  }

  /** The run's report. */
  async get(actor: Actor, id: string): Promise<Result<ReconciliationReport, 'unknown_run'>> {
    const run = await this.find(actor, id);
    if (!run) return unknownRun(id);
    const [findings, creditNotes] = await Promise.all([listFindings(this.deps.pool, id), creditNotesOfRun(this.deps.pool, id)]);
    return ok({ run, findings, creditNotes });
  }

  /** Issue the corrections of the pending findings (credit notes, missing invoices), then complete. */
  approve(actor: Actor, id: string): Promise<Result<RunRef, DecisionRefusal>> {
    return this.decide(actor, id, 'approve', (handle) => handle.signal(approveSignal));
  }

  /** Recompute the findings, after their cause was fixed. */
  retry(actor: Actor, id: string): Promise<Result<RunRef, DecisionRefusal>> {
    return this.decide(actor, id, 'retry', (handle) => handle.signal(retrySignal));
  }

  /** Close every pending finding without a correction, then complete. */
  dismiss(actor: Actor, id: string, reason?: string): Promise<Result<RunRef, DecisionRefusal>> {
    return this.decide(actor, id, 'dismiss', (handle) => handle.signal(dismissSignal, reason === undefined ? {} : { reason }));
  }

  /** The run, when it exists and the actor sees its customer (a run over all customers is seen by unrestricted actors only). */
  private async find(actor: Actor, id: string): Promise<ReconciliationRun | undefined> {
    const run = await getRun(this.deps.pool, id);
    return run && seesCustomerId(actor, run.customerId) ? run : undefined;
  }

  /** Sends the decision to the run's workflow while the run is open. */
  private async decide(
    actor: Actor,
    id: string,
    decision: Decision,
    send: (handle: WorkflowHandle) => Promise<void>,
  ): Promise<Result<RunRef, DecisionRefusal>> {
    const run = await this.find(actor, id);
    if (!run) return unknownRun(id);
    if (run.status === 'completed' || run.status === 'canceled')
      return refuse('conflict', 'run_closed', `Reconciliation run ${id} is ${run.status}.`, { run_status: run.status });
    try {
      await send(this.deps.client.workflow.getHandle(id));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        return refuse(
          'conflict',
          'run_not_running',
          `The workflow of reconciliation run ${id} is no longer running; start the reconciliation again.`,
          { run_status: run.status },
        );
      }
      return this.temporalUnavailable(err, `send ${decision}`);
    }
    return ok({ id });
  }

  /** Nothing was started or sent: the same request again converges once Temporal answers. */
  private temporalUnavailable(err: unknown, what: string): Refusal<TemporalUnavailable> {
    this.deps.logger.error({ err }, `reconciliation: ${what} failed`);
    return refuse('unavailable', 'temporal_unavailable', `Temporal could not be reached to ${what}; retry the same request.`);
  }
}

const unknownRun = (id: string) => refuse('not_found', 'unknown_run', `No reconciliation run ${id}.`);
