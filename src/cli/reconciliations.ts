import { Command, Option } from 'commander';
import { CliError, exitCodes, type CliContext } from './context';
import { emit, record, table } from './output';

/*
 * Reconciliation from a terminal goes through the running API (POST/GET /v1/reconciliations), as
 * the Temporal UI goes through Temporal: the same start (workflow id per period and customer,
 * a retry finds the running run) and the same report, with no second implementation here.
 */

interface ApiOptions {
  apiUrl: string;
  key?: string;
}

interface Report {
  id: string;
  status: string;
  period: { start: string; end: string };
  customer: string | null;
  invoices_checked: number | null;
  findings: Array<{
    id: number;
    kind: string;
    customer: string | null;
    invoice_id: string | null;
    description: string;
    correction: string | null;
    currency: string | null;
    resolution: string;
  }>;
  credit_notes: Array<{ id: string; invoice_id: string; amount: string; currency: string; reason: string }>;
}

async function callApi(opts: ApiOptions, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  if (!opts.key)
    throw new CliError('pass --key or set METERFLOW_API_KEY (a key with billing:admin, not restricted to a customer)', exitCodes.cannotRun);
  const url = `${opts.apiUrl.replace(/\/+$/, '')}${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${opts.key}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new CliError(
      `cannot reach the API at ${opts.apiUrl} (start it with \`npm start\`, or pass --api-url): ${err instanceof Error ? err.message : String(err)}`,
      exitCodes.cannotRun,
    );
  }
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (res.ok) return json;
  const detail = typeof json.detail === 'string' ? json.detail : `HTTP ${res.status}`;
  throw new CliError(detail, res.status === 401 || res.status >= 500 ? exitCodes.cannotRun : exitCodes.failed);
}

const apiOptions = (command: Command) =>
  command
    .option('--api-url <url>', 'the running API', 'http://127.0.0.1:3000')
    .addOption(new Option('--key <secret>', 'API key with billing:admin').env('METERFLOW_API_KEY'));

function describe(report: Report): string {
  const summary = record({
    id: report.id,
    status: report.status,
    period: `${report.period.start} → ${report.period.end}`,
    customer: report.customer ?? 'all',
    'invoices checked': report.invoices_checked,
  });
  const findings = report.findings.length
    ? table(
        ['#', 'kind', 'customer', 'invoice', 'correction', 'resolution', 'what'],
        report.findings.map((f) => [
          f.id,
          f.kind,
          f.customer,
          f.invoice_id,
          f.correction && `${f.correction} ${f.currency ?? ''}`,
          f.resolution,
          f.description,
        ]),
      )
    : 'no findings';
  const notes = report.credit_notes.length
    ? `\ncredit notes:\n${table(
        ['id', 'invoice', 'amount', 'reason'],
        report.credit_notes.map((c) => [c.id, c.invoice_id, `${c.amount} ${c.currency}`, c.reason]),
      )}`
    : '';
  return `${summary}\n${findings}${notes}`;
}

export function reconciliationsCommand(ctx: CliContext): Command {
  const command = new Command('reconciliations').description(
    'start a reconciliation, read its report, approve or retry it (through the running API)',
  );

  apiOptions(
    command
      .command('start')
      .description('reconcile the invoices of a period (one customer, or all); waits for approval when it finds discrepancies')
      .requiredOption('--period-start <date>', 'e.g. 2026-11-01 (midnight UTC) or an instant with an offset')
      .requiredOption('--period-end <date>', 'exclusive')
      .option('--customer <id>', "a customer's external id (default: every customer)")
      .option('--auto-approve', 'issue the corrections without waiting for approval'),
  ).action(
    async (opts: ApiOptions & { periodStart: string; periodEnd: string; customer?: string; autoApprove?: boolean }, sub: Command) => {
      const started = await callApi(opts, 'POST', '/v1/reconciliations', {
        period_start: opts.periodStart,
        period_end: opts.periodEnd,
        ...(opts.customer ? { customer: opts.customer } : {}),
        auto_approve: Boolean(opts.autoApprove),
      });
      emit(ctx, sub, started, () => `started ${String(started.id)}; report: npm run cli -- reconciliations show '${String(started.id)}'`);
    },
  );

  apiOptions(
    command
      .command('show')
      .description("a run's report: findings and credit notes")
      .argument('<id>', 'the run id, e.g. reconcile/2026-11-01/all'),
  ).action(async (id: string, opts: ApiOptions, sub: Command) => {
    const report = (await callApi(opts, 'GET', `/v1/reconciliations/${encodeURIComponent(id)}`)) as unknown as Report;
    emit(ctx, sub, report, () => describe(report));
  });

  for (const [name, what] of [
    ['approve', 'issue one credit note per correctable finding and each missing invoice, and complete'],
    ['retry', 'recompute (after fixing the cause)'],
  ] as const) {
    apiOptions(command.command(name).description(what).argument('<id>', 'the run id')).action(
      async (id: string, opts: ApiOptions, sub: Command) => {
        const answer = await callApi(opts, 'POST', `/v1/reconciliations/${encodeURIComponent(id)}/${name}`);
        emit(ctx, sub, answer, () => `${name} sent to ${id}`);
      },
    );
  }
  return command;
}
