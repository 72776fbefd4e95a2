import { invoiceTotals } from '../../src/domain/invoice-pipeline';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PDFParse } from 'pdf-parse';
import { parseDecimal } from '../../src/domain/money';
import { renderInvoiceDocument } from '../../src/invoices/documents/render';
import { invoiceView, moneyText, periodText } from '../../src/invoices/documents/view';
import type { Invoice, InvoiceLine } from '../../src/invoices/store';

/*
 * The document of an invoice from its data alone, without a database: the line types the view
 * sums apart (discounts, taxes, credits applied), segments, line types it does not know, and
 * currency formatting by minor units. The types discount, tax and credit and the segment field
 * come from other parts of the invoice builder; the view reads them generically, by type name.
 */

const line = (position: number, fields: Partial<InvoiceLine> & Record<string, unknown>): InvoiceLine =>
  ({
    position,
    type: 'usage',
    meter: null,
    model: null,
    quantity: null,
    description: `line ${position}`,
    exactAmount: '0',
    amount: '0.00',
    breakdown: [],
    adjusts: null,
    ...fields,
  }) as InvoiceLine;

const issued: Invoice = {
  id: '00000000-0000-4000-8000-000000000001',
  customerId: '00000000-0000-4000-8000-000000000002',
  customer: 'acme',
  subscriptionId: '00000000-0000-4000-8000-000000000003',
  planCode: 'pro',
  currency: 'EUR',
  kind: 'period',
  sequence: 0,
  threshold: null,
  periodStart: new Date('2026-03-01T00:00:00Z'),
  periodEnd: new Date('2026-04-01T00:00:00Z'),
  status: 'finalized',
  number: 'INV-2026-000042',
  seller: { name: 'Seller SE', address: ['1 Rue Exemple', '75001 Paris'], taxId: 'FR00123456789', email: null },
  billTo: { name: 'Acme', externalId: 'acme' },
  usage: { api_calls: '12000' },
  total: '1143.92',
  totals: { net: '0', tax: '0', gross: '0' }, // derived from the lines below, as the store does
  createdAt: new Date('2026-04-01T00:05:00Z'),
  finalizedAt: new Date('2026-04-01T00:06:00Z'),
  paidAt: null,
  paymentFailedAt: null,
  voidedAt: null,
  voidReason: null,
  lines: [
    line(1, {
      type: 'base_fee',
      description: 'Basic plan, 1–15 March',
      amount: '100.00',
      segment: { planCode: 'basic', start: '2026-03-01T00:00:00.000Z', end: '2026-03-16T00:00:00.000Z' },
    }),
    line(2, {
      description: 'API calls',
      quantity: '12000',
      amount: '1002.50',
      segment: { planCode: 'pro', start: '2026-03-16T00:00:00.000Z', end: '2026-04-01T00:00:00.000Z' },
      breakdown: [
        { description: 'first 10,000', from: '0', to: '10000', units: '10000', unit_price: '0.1', flat_fee: '0', amount: '1000' },
        { description: 'above', from: '10000', to: null, units: '2000', unit_price: '0.00125', flat_fee: '0', amount: '2.5' },
      ],
    }),
    line(3, { type: 'support_hours' as InvoiceLine['type'], description: 'Priority support', quantity: '2', amount: '50.00' }),
    line(4, { type: 'discount' as InvoiceLine['type'], description: '10% off the base fee', amount: '-10.00' }),
    line(5, { type: 'tax' as InvoiceLine['type'], description: 'VAT 20%', amount: '228.50' }),
    line(6, { type: 'credit' as InvoiceLine['type'], description: 'Prepaid credits', amount: '-227.08' }),
  ],
};
issued.totals = invoiceTotals(
  issued.currency,
  issued.lines.map((l) => ({ type: l.type, meter: l.meter, amount: l.amount, inclusive: l.tax?.inclusive ?? null })),
);

const totals = (invoice: Invoice) => Object.fromEntries(invoiceView(invoice).totals.map((t) => [t.label, t.amount]));

describe('invoice view', () => {
  test('net, tax and gross are derived from the lines by type; credits bring gross down to the amount due', () => {
    const view = invoiceView(issued);
    assert.deepEqual(totals(issued), {
      Charges: 'EUR 1,152.50',
      Discounts: 'EUR -10.00',
      Net: 'EUR 1,142.50',
      Tax: 'EUR 228.50',
      'Gross total': 'EUR 1,371.00',
      'Credits applied': 'EUR -227.08',
    });
    assert.equal(view.amountDue, 'EUR 1,143.92');
    assert.equal(parseDecimal('1371.00').plus(parseDecimal('-227.08')).toFixed(2), issued.total, 'the figures add up to the invoice total');
  });

  test('charges are grouped by segment in order; an unknown line type is a plain charge; discounts, taxes, credits have their sections', () => {
    const view = invoiceView(issued);
    assert.deepEqual(
      view.sections.map((s) => [s.title, s.subtitle, s.lines.map((l) => l.description)]),
      [
        ['Charges', 'Plan basic, 2026-03-01 – 2026-03-15', ['Basic plan, 1–15 March']],
        ['Charges', 'Plan pro, 2026-03-16 – 2026-03-31', ['API calls']],
        ['Charges', null, ['Priority support']],
        ['Discounts', null, ['10% off the base fee']],
        ['Taxes', null, ['VAT 20%']],
        ['Credits applied', null, ['Prepaid credits']],
      ],
    );
    assert.deepEqual(view.sections[1]!.lines[0]!.tiers[0], {
      description: 'first 10,000',
      units: '10,000',
      unitPrice: '0.1',
      flatFee: '0',
      amount: '1,000',
    });
    assert.equal(view.sections[1]!.lines[0]!.quantity, '12,000');
  });

  test('amounts carry exactly the minor units of their currency', () => {
    assert.equal(moneyText(parseDecimal('1234567.5'), 'USD'), 'USD 1,234,567.50');
    assert.equal(moneyText(parseDecimal('1500'), 'JPY'), 'JPY 1,500');
    assert.equal(moneyText(parseDecimal('0.125'), 'KWD'), 'KWD 0.125');
    assert.equal(moneyText(parseDecimal('-1000'), 'EUR'), 'EUR -1,000.00');
    assert.throws(() => moneyText(parseDecimal('0.125'), 'USD'), /round it with roundToMinor first/, 'formatting never rounds');
  });

  test('periods read as their first and last day; other bounds to the second, end exclusive', () => {
    assert.equal(periodText(new Date('2026-01-01T00:00:00Z'), new Date('2026-02-01T00:00:00Z')), '2026-01-01 – 2026-01-31');
    assert.equal(periodText(new Date('2026-01-01T00:00:00Z'), new Date('2026-01-02T00:00:00Z')), '2026-01-01 – 2026-01-01');
    assert.equal(
      periodText(new Date('2026-01-01T12:00:00Z'), new Date('2026-01-02T12:00:00Z')),
      '2026-01-01 12:00:00 UTC – 2026-01-02 12:00:00 UTC (end exclusive)',
    );
  });

  test('paid and void invoices owe nothing; a draft has no document', () => {
    const paid = invoiceView({ ...issued, status: 'paid', paidAt: new Date('2026-04-03T00:00:00Z') });
    assert.deepEqual([paid.amountDue, paid.paymentStatus], ['EUR 0.00', 'Paid on 2026-04-03']);
    const failed = invoiceView({ ...issued, status: 'payment_failed', paymentFailedAt: new Date('2026-04-10T00:00:00Z') });
    assert.equal(failed.amountDue, 'EUR 1,143.92');
    const voided = invoiceView({ ...issued, status: 'void', voidedAt: new Date('2026-04-04T00:00:00Z'), voidReason: 'duplicate' });
    assert.deepEqual([voided.amountDue, voided.voided], ['EUR 0.00', { on: '2026-04-04', reason: 'duplicate' }]);
    assert.throws(() => invoiceView({ ...issued, status: 'draft', number: null, finalizedAt: null, billTo: null }), /never issued/);
  });
});

describe('invoice documents', () => {
  test('the HTML escapes what it prints and fetches nothing', async () => {
    const hostile = { ...issued, billTo: { name: '<script>alert(1)</script>', externalId: 'x"y' } };
    const html = (await renderInvoiceDocument(hostile, 'html')).body.toString('utf8');
    assert.ok(!html.includes('<script>'));
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.ok(html.includes('Customer ID: x&quot;y'));
    assert.doesNotMatch(html, /\b(src|href)=/);
  });

  test('the PDF shows every section and total, page after page when the lines run long', async () => {
    const many = {
      ...issued,
      lines: [
        ...issued.lines,
        ...Array.from({ length: 80 }, (_, i) => line(7 + i, { type: 'adjustment', description: `Adjustment ${i + 1}`, amount: '0.00' })),
      ],
    };
    const pdf = await renderInvoiceDocument(many, 'pdf');
    assert.equal(pdf.filename, 'INV-2026-000042.pdf');
    const parser = new PDFParse({ data: new Uint8Array(pdf.body) });
    try {
      const { text, total } = await parser.getText();
      assert.ok(total >= 2, `${total} pages`);
      for (const expected of [
        'Seller SE',
        'Tax ID: FR00123456789',
        'Plan basic, 2026-03-01 – 2026-03-15',
        'Discounts',
        'VAT 20%',
        'Credits applied',
        'Priority support',
        'Adjustment 80',
        'Gross total',
        'EUR 1,371.00',
        `INV-2026-000042 · page ${total} of ${total}`,
      ])
        assert.ok(text.includes(expected), `the PDF shows ${expected}:\n${text}`);
    } finally {
      await parser.destroy();
    }
  });
});
