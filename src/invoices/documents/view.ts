import type { CurrencyCode } from '../../domain/currencies';
import { invoiceTotals } from '../../domain/invoice-pipeline';
import { Decimal, ZERO, formatMoney, parseDecimal } from '../../domain/money';
import type { Invoice, InvoiceLine } from '../store';

/**
 * What an invoice document shows, as text, computed from the frozen invoice alone: both formats
 * print this and nothing else, so HTML and PDF agree figure for figure, and the same invoice
 * always yields the same document. No clock, no locale, no configuration is read here.
 */
export interface InvoiceView {
  number: string;
  currency: CurrencyCode;
  /** When the invoice was finalized: its issue date, and the PDF's creation date. */
  issuedAt: Date;
  issuedOn: string;
  period: string;
  /** Null when the invoice was finalized before sellers were snapshotted (migration 0019). */
  seller: Party | null;
  billTo: Party;
  sections: Section[];
  totals: Total[];
  amountDue: string;
  paymentStatus: string;
  /** Set when the invoice is void: the document is marked VOID and owes nothing. */
  voided: { on: string; reason: string } | null;
}

export interface Party {
  name: string;
  lines: string[];
}

export interface Section {
  title: string;
  /** Under what a group of lines falls, e.g. the plan and dates of a segment; null for none. */
  subtitle: string | null;
  lines: LineView[];
}

export interface LineView {
  description: string;
  notes: string[];
  quantity: string | null;
  amount: string;
  tiers: TierView[];
}

/** One row of a line's price breakdown, at full precision as priced (only line amounts are rounded). */
export interface TierView {
  description: string;
  units: string;
  unitPrice: string;
  flatFee: string;
  amount: string;
}

export interface Total {
  label: string;
  amount: string;
  /** The figure the document leads with (the gross total). */
  emphasis: boolean;
}

/** A line's part of a segmented invoice: the plan in force over [start, end) (added by plan changes mid-period). */
interface LineSegment {
  planCode: string;
  start: Date | string;
  end: Date | string;
}

/** Where a line of each type is shown and summed; any other type is a charge, shown as a plain line. */
const sectionOfType: Record<string, 'discounts' | 'taxes' | 'credits'> = { discount: 'discounts', tax: 'taxes', credit: 'credits' };
const sectionTitles = { discounts: 'Discounts', taxes: 'Taxes', credits: 'Credits applied' } as const;

const DAY_MS = 86_400_000;

const isoDate = (d: Date) => d.toISOString().slice(0, 10);
const isMidnight = (d: Date) => d.getTime() % DAY_MS === 0;

/**
 * A half-open period [start, end) as people read it: whole UTC days as their first and last
 * date ("2026-01-01 – 2026-01-31"), anything else to the second with the end exclusive.
 */
export function periodText(start: Date, end: Date): string {
  if (isMidnight(start) && isMidnight(end) && end > start) return `${isoDate(start)} – ${isoDate(new Date(end.getTime() - DAY_MS))}`;
  const instant = (d: Date) => `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  return `${instant(start)} – ${instant(end)} (end exclusive)`;
}

/** Digits grouped by thousands, with the integer part's sign. */
function grouped(text: string): string {
  const negative = text.startsWith('-');
  const [whole, fraction] = (negative ? text.slice(1) : text).split('.');
  const groups = whole!.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${negative ? '-' : ''}${groups}${fraction === undefined ? '' : `.${fraction}`}`;
}

/** An amount already rounded to the currency's minor unit, with exactly its digits: "USD 1,234.50", "JPY 1,500", "KWD 0.125". */
export const moneyText = (amount: Decimal, currency: CurrencyCode): string => `${currency} ${grouped(formatMoney(amount, currency))}`;

/** A quantity or exact price as stored, digits grouped, never rounded. */
const exactText = (value: string) => grouped(parseDecimal(value).toFixed());

const segmentOf = (line: InvoiceLine): LineSegment | null => (line as InvoiceLine & { segment?: LineSegment | null }).segment ?? null;

const segmentTitle = (s: LineSegment) => `Plan ${s.planCode}, ${periodText(new Date(s.start), new Date(s.end))}`;

function lineView(line: InvoiceLine, currency: CurrencyCode): LineView {
  return {
    description: line.description,
    notes: line.adjusts ? [`Late usage of the period ${periodText(line.adjusts.periodStart, line.adjusts.periodEnd)}`] : [],
    quantity: line.quantity === null ? null : exactText(line.quantity),
    amount: moneyText(parseDecimal(line.amount), currency),
    tiers: line.breakdown.map((row) => ({
      description: row.description,
      units: exactText(row.units),
      unitPrice: exactText(row.unit_price),
      flatFee: exactText(row.flat_fee),
      amount: exactText(row.amount),
    })),
  };
}

const sum = (lines: InvoiceLine[]) => lines.reduce((total, l) => total.plus(parseDecimal(l.amount)), ZERO);

/** Charges in order, one section per run of lines under the same segment (or none). */
function chargeSections(lines: InvoiceLine[], currency: CurrencyCode): Section[] {
  const sections: (Section & { key: string })[] = [];
  for (const line of lines) {
    const segment = segmentOf(line);
    const subtitle = segment ? segmentTitle(segment) : null;
    const key = subtitle ?? '';
    const last = sections.at(-1);
    if (last && last.key === key) last.lines.push(lineView(line, currency));
    else sections.push({ key, title: 'Charges', subtitle, lines: [lineView(line, currency)] });
  }
  return sections.map(({ key: _key, ...section }) => section);
}

function paymentStatus(invoice: Invoice): string {
  switch (invoice.status) {
    case 'paid':
      return `Paid on ${isoDate(invoice.paidAt!)}`;
    case 'payment_failed':
      return `Payment failed on ${isoDate(invoice.paymentFailedAt!)}; amount due outstanding`;
    case 'void':
      return `Void since ${isoDate(invoice.voidedAt!)}: nothing is due`;
    default:
      return 'Awaiting payment';
  }
}

/**
 * The document of an issued invoice: charges are the segments, adjustments and any line type this
 * code does not know; net, tax and gross are the invoice pipeline's totals of every line but the
 * credits applied (src/domain/invoice-pipeline.ts: an inclusive tax is inside the charges, so it
 * does not add to the gross), and credits applied bring the gross down to the total due. Every
 * figure is a sum of the rounded line amounts, as the total is.
 */
export function invoiceView(invoice: Invoice): InvoiceView {
  if (invoice.number === null || invoice.finalizedAt === null || invoice.billTo === null) {
    throw new Error(`Invoice ${invoice.id} was never issued: a draft has no document.`);
  }
  const { currency } = invoice;
  const byKind = { charges: [] as InvoiceLine[], discounts: [] as InvoiceLine[], taxes: [] as InvoiceLine[], credits: [] as InvoiceLine[] };
  for (const line of invoice.lines) byKind[sectionOfType[line.type] ?? 'charges'].push(line);

  const { net, tax, gross } = invoiceTotals(
    currency,
    invoice.lines
      .filter((l) => sectionOfType[l.type] !== 'credits')
      .map((l) => ({ type: l.type, meter: l.meter, amount: l.amount, inclusive: l.tax?.inclusive ?? null })),
  );
  const money = (amount: Decimal) => moneyText(amount, currency);
  const totals: Total[] = [
    { label: 'Charges', amount: money(sum(byKind.charges)), emphasis: false },
    ...(byKind.discounts.length ? [{ label: 'Discounts', amount: money(sum(byKind.discounts)), emphasis: false }] : []),
    { label: 'Net', amount: money(parseDecimal(net)), emphasis: false },
    { label: 'Tax', amount: money(parseDecimal(tax)), emphasis: false },
    { label: 'Gross total', amount: money(parseDecimal(gross)), emphasis: true },
    ...(byKind.credits.length ? [{ label: 'Credits applied', amount: money(sum(byKind.credits)), emphasis: false }] : []),
  ];
  const owes = invoice.status === 'finalized' || invoice.status === 'payment_failed';
  const seller = invoice.seller;
  return {
    number: invoice.number,
    currency,
    issuedAt: invoice.finalizedAt,
    issuedOn: isoDate(invoice.finalizedAt),
    period: periodText(invoice.periodStart, invoice.periodEnd),
    seller: seller && {
      name: seller.name,
      lines: [...seller.address, ...(seller.taxId ? [`Tax ID: ${seller.taxId}`] : []), ...(seller.email ? [seller.email] : [])],
    },
    billTo: { name: invoice.billTo.name, lines: [`Customer ID: ${invoice.billTo.externalId}`] },
    sections: [
      ...chargeSections(byKind.charges, currency),
      ...(['discounts', 'taxes', 'credits'] as const)
        .filter((kind) => byKind[kind].length > 0)
        .map((kind) => ({ title: sectionTitles[kind], subtitle: null, lines: byKind[kind].map((l) => lineView(l, currency)) })),
    ],
    totals,
    amountDue: money(owes ? parseDecimal(invoice.total) : new Decimal(0)),
    paymentStatus: paymentStatus(invoice),
    voided: invoice.status === 'void' ? { on: isoDate(invoice.voidedAt!), reason: invoice.voidReason! } : null,
  };
}
