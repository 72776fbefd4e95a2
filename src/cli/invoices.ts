import { Command } from 'commander';
import { z } from 'zod';
import { page, PageQuerySchema } from '../api/pagination';
import { systemClock } from '../clock';
import { Identifier, InstantSchema, storable } from '../domain/edge-schemas';
import { InvoiceService } from '../invoices/service';
import { invoiceStatuses, type Invoice } from '../invoices/store';
import type { ChargeRecord } from '../payments/store';
import { ChargeHistory } from '../payments/charge-history';
import { parseInput, unwrapForCli, withDatabase, type CliContext } from './context';
import { emit, pageText, record, table } from './output';

const ListInputSchema = PageQuerySchema.extend({
  customer: Identifier.optional(),
  status: z.enum(invoiceStatuses).optional(),
});
const IdSchema = z.uuid({ error: 'must be an invoice id (a UUID)' });
const ReasonSchema = storable(z.string().trim().min(1, 'must not be empty').max(500));

const iso = (d: Date | null) => d?.toISOString() ?? null;

// Newest period first, as the store orders them; the cursor is the last row's sort key.
const cursorOf = (i: Invoice) => `${i.periodStart.toISOString()}_${i.id}`;
const CursorSchema = z
  .string()
  .regex(/^[^_]+_[^_]+$/, 'must be a cursor printed by invoices list')
  .transform((s) => s.split('_') as [string, string])
  .pipe(z.tuple([InstantSchema, z.uuid()]))
  .transform(([start, id]) => ({ periodStart: new Date(start), id }));

const period = (i: Invoice) => `${i.periodStart.toISOString()} – ${i.periodEnd.toISOString()}`;
const toRow = (i: Invoice) => [i.id, i.customer, period(i), i.status, `${i.total} ${i.currency}`];
const head = ['id', 'customer', 'period', 'status', 'total'];

function describe(invoice: Invoice, charge: ChargeRecord | undefined): string {
  const parts = [
    record({
      id: invoice.id,
      number: invoice.number,
      customer: invoice.customer,
      plan: invoice.planCode,
      kind: invoice.kind === 'interim' ? `interim #${invoice.sequence} (spend threshold ${invoice.threshold})` : 'period',
      period: period(invoice),
      status: invoice.status,
      total: `${invoice.total} ${invoice.currency}`,
      'net / tax / gross': `${invoice.totals.net} / ${invoice.totals.tax} / ${invoice.totals.gross}`,
      finalized: iso(invoice.finalizedAt),
      paid: iso(invoice.paidAt),
      'payment failed': iso(invoice.paymentFailedAt),
      voided: invoice.voidedAt && `${invoice.voidedAt.toISOString()} (${invoice.voidReason})`,
    }),
    'lines',
    table(
      ['#', 'type', 'meter', 'quantity', 'description', 'exact amount', 'amount'],
      invoice.lines.map((l) => [l.position, l.type, l.meter, l.quantity, l.description, l.exactAmount, l.amount]),
    ),
  ];
  for (const line of invoice.lines.filter((l) => l.breakdown.length)) {
    parts.push(
      `line ${line.position} breakdown`,
      table(
        ['description', 'from', 'to', 'units', 'unit price', 'flat fee', 'amount'],
        line.breakdown.map((b) => [b.description, b.from, b.to ?? '∞', b.units, b.unit_price, b.flat_fee, b.amount]),
      ),
    );
  }
  parts.push(
    charge ? `charge: ${charge.status}, ${charge.amount} ${charge.currency}` : 'charge: none yet',
    ...(charge?.attempts.length
      ? [
          table(
            ['attempt', 'status', 'decline code', 'provider charge', 'requested', 'completed'],
            charge.attempts.map((a) => [
              a.attempt,
              a.status,
              a.declineCode,
              a.providerChargeId,
              a.requestedAt.toISOString(),
              iso(a.completedAt),
            ]),
          ),
        ]
      : []),
  );
  return parts.join('\n');
}

/**
 * The API's wire shapes, shared with GET /v1/invoices; loaded by the invoice commands only, as
 * the route module brings Express and the OpenAPI registry, a quarter of a second at every start.
 */
const wireShapes = () => import('../api/routes/invoices');

export function invoicesCommand(ctx: CliContext): Command {
  const invoices = new Command('invoices').description('invoices, directly in the database (void acts as "cli" in the audit log)');

  invoices
    .command('list')
    .description('list invoices, newest period first')
    .option('--customer <externalId>', "only this customer's")
    .option('--status <status>', invoiceStatuses.join(', '))
    .option('--limit <n>', 'page size (at most 500)', '50')
    .option('--after <cursor>', "the previous page's cursor")
    .action(async (opts: { customer?: string; status?: string; limit: string; after?: string }, command: Command) => {
      const query = parseInput(ListInputSchema, opts, 'options');
      const after = query.after === undefined ? undefined : parseInput(CursorSchema, query.after, '--after');
      const rows = unwrapForCli(
        await withDatabase(ctx, (pool) =>
          new InvoiceService(pool, systemClock).list(
            'cli',
            { ...(query.customer ? { customer: query.customer } : {}), ...(query.status ? { status: query.status } : {}) },
            query.limit + 1,
            after,
          ),
        ),
      );
      const result = page(rows, query.limit, cursorOf);
      const { invoiceToJson } = await wireShapes();
      emit(ctx, command, { data: result.data.map(invoiceToJson), next_cursor: result.next_cursor }, () =>
        pageText(table(head, result.data.map(toRow)), result.data.length, result.next_cursor),
      );
    });

  invoices
    .command('show')
    .description('show an invoice: its lines with their price breakdowns, its charge and every attempt')
    .argument('<id>')
    .action(async (id: string, _opts: unknown, command: Command) => {
      parseInput(IdSchema, id, 'id');
      const { invoice, charge } = await withDatabase(ctx, async (pool) => {
        const found = unwrapForCli(await new InvoiceService(pool, systemClock).get('cli', id));
        return { invoice: found, charge: await new ChargeHistory(pool).of(found.id) };
      });
      const { invoiceToJson, chargeToJson } = await wireShapes();
      emit(ctx, command, { ...invoiceToJson(invoice), charge: charge ? chargeToJson(charge) : null }, () => describe(invoice, charge));
    });

  invoices
    .command('void')
    .description('void an invoice (draft, finalized or payment_failed) with a reason; repeating it is safe')
    .argument('<id>')
    .requiredOption('--reason <text>', 'why, for the audit log and the invoice')
    .action(async (id: string, opts: { reason: string }, command: Command) => {
      parseInput(IdSchema, id, 'id');
      const reason = parseInput(ReasonSchema, opts.reason, '--reason');
      const result = unwrapForCli(await withDatabase(ctx, (pool) => new InvoiceService(pool, systemClock).void('cli', id, reason)));
      const { invoiceToJson } = await wireShapes();
      emit(
        ctx,
        command,
        invoiceToJson(result.invoice),
        () => `${result.outcome === 'voided' ? 'voided' : 'already void'}\n${table(head, [toRow(result.invoice)])}`,
      );
    });

  return invoices;
}
