import PDFDocument from 'pdfkit';
import type { InvoiceView, LineView, Party } from './view';

/*
 * The invoice as an A4 PDF, drawn with PDFKit and its built-in standard fonts (Helvetica: nothing
 * embedded, nothing fetched). Deterministic: the creation date is the invoice's finalization, and
 * PDFKit derives the file id from the document info, so the same view gives the same bytes. The
 * standard fonts cover Latin-1 (WinAnsi); text outside it does not print correctly.
 */

const PAGE = { width: 595.28, height: 841.89 };
const MARGIN = 50;
/** Rows start a new page below this; PDFKit's own page break (at height − margin) is never reached. */
const BOTTOM = PAGE.height - MARGIN - 20;
const RIGHT = PAGE.width - MARGIN;

type Align = 'left' | 'right';
interface Cell {
  text: string;
  x: number;
  width: number;
  align?: Align;
}

/** Columns of the lines table, and of a line's price breakdown beneath it. */
const lineColumns = { description: [MARGIN, 300], quantity: [350, 70], amount: [420, RIGHT - 420] } as const;
const tierColumns = {
  description: [MARGIN + 15, 165],
  units: [230, 70],
  unitPrice: [300, 90],
  flatFee: [390, 60],
  amount: [450, RIGHT - 450],
} as const;

const cell = (text: string, [x, width]: readonly [number, number], align: Align = 'left'): Cell => ({ text, x, width, align });

export function renderInvoicePdf(view: InvoiceView): Promise<Buffer> {
  const doc = new PDFDocument({
    size: 'A4',
    margin: MARGIN,
    bufferPages: true,
    info: {
      Title: `Invoice ${view.number}`,
      Author: view.seller?.name ?? '',
      Subject: `Invoice ${view.number} for ${view.billTo.name}, ${view.period}`,
      CreationDate: view.issuedAt,
    },
  });
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('data', (chunk: Buffer) => chunks.push(chunk));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });
  draw(doc, view);
  doc.end();
  return done;
}

function draw(doc: PDFKit.PDFDocument, view: InvoiceView): void {
  let y = MARGIN;
  const newPage = () => {
    doc.addPage();
    if (view.voided) voidMark(doc);
    y = MARGIN;
  };
  /** One row of cells at the cursor, on a new page if it does not fit; advances the cursor. */
  const row = (cells: Cell[], font: string, size: number, gap = 4) => {
    doc.font(font).fontSize(size);
    const height = Math.max(...cells.map((c) => doc.heightOfString(c.text || ' ', { width: c.width })));
    if (y + height > BOTTOM) newPage();
    for (const c of cells) doc.text(c.text, c.x, y, { width: c.width, align: c.align ?? 'left' });
    y += height + gap;
  };
  const rule = (weight: number) => {
    doc.moveTo(MARGIN, y).lineTo(RIGHT, y).lineWidth(weight).strokeColor('#000000').stroke();
    y += 4;
  };

  if (view.voided) voidMark(doc);

  // Seller on the left, the invoice's identity on the right.
  const top = y;
  doc
    .font('Helvetica-Bold')
    .fontSize(18)
    .text(`Invoice ${view.number}`, 300, top, { width: RIGHT - 300, align: 'right' });
  doc.font('Helvetica').fontSize(10);
  let right = top + 26;
  for (const [label, value] of [
    ['Issued', view.issuedOn],
    ['Period', view.period],
    ['Currency', view.currency],
  ] as const) {
    doc.text(`${label}: ${value}`, 250, right, { width: RIGHT - 250, align: 'right' });
    right += doc.heightOfString(`${label}: ${value}`, { width: RIGHT - 250 }) + 2;
  }
  y = partyBlock(doc, view.seller, MARGIN, top, 'Seller details were not recorded for this invoice.');
  y = Math.max(y, right) + 14;

  row([cell('Bill to', [MARGIN, 200])], 'Helvetica-Bold', 11, 2);
  y = partyBlock(doc, view.billTo, MARGIN, y) + 10;

  if (view.voided) row([cell(`VOID since ${view.voided.on}: ${view.voided.reason}`, [MARGIN, RIGHT - MARGIN])], 'Helvetica-Bold', 12, 10);

  row(
    [
      cell('Description', lineColumns.description),
      cell('Quantity', lineColumns.quantity, 'right'),
      cell('Amount', lineColumns.amount, 'right'),
    ],
    'Helvetica-Bold',
    10,
    2,
  );
  rule(1);
  for (const section of view.sections) {
    y += 4;
    row(
      [cell(section.subtitle ? `${section.title} — ${section.subtitle}` : section.title, [MARGIN, RIGHT - MARGIN])],
      'Helvetica-Bold',
      10,
      3,
    );
    for (const line of section.lines) lineRows(line, row);
  }
  rule(1);

  y += 4;
  const totalCells = (label: string, amount: string) => [cell(label, [300, 120], 'right'), cell(amount, lineColumns.amount, 'right')];
  for (const total of view.totals) row(totalCells(total.label, total.amount), total.emphasis ? 'Helvetica-Bold' : 'Helvetica', 10, 3);
  row(totalCells('Amount due', view.amountDue), 'Helvetica-Bold', 12, 12);
  row([cell(`Payment status: ${view.paymentStatus}`, [MARGIN, RIGHT - MARGIN])], 'Helvetica', 10);

  pageFooters(doc, view.number);
}

function lineRows(line: LineView, row: (cells: Cell[], font: string, size: number, gap?: number) => void): void {
  row(
    [
      cell(line.description, lineColumns.description),
      cell(line.quantity ?? '', lineColumns.quantity, 'right'),
      cell(line.amount, lineColumns.amount, 'right'),
    ],
    'Helvetica',
    10,
    line.notes.length || line.tiers.length ? 1 : 4,
  );
  for (const note of line.notes) row([cell(note, [MARGIN + 15, 300])], 'Helvetica-Oblique', 8, 2);
  if (line.tiers.length === 0) return;
  row(
    [
      cell('Tier', tierColumns.description),
      cell('Units', tierColumns.units, 'right'),
      cell('Unit price', tierColumns.unitPrice, 'right'),
      cell('Flat fee', tierColumns.flatFee, 'right'),
      cell('Amount (exact)', tierColumns.amount, 'right'),
    ],
    'Helvetica-Oblique',
    8,
    1,
  );
  for (const [i, t] of line.tiers.entries())
    row(
      [
        cell(t.description, tierColumns.description),
        cell(t.units, tierColumns.units, 'right'),
        cell(t.unitPrice, tierColumns.unitPrice, 'right'),
        cell(t.flatFee, tierColumns.flatFee, 'right'),
        cell(t.amount, tierColumns.amount, 'right'),
      ],
      'Helvetica',
      8,
      i === line.tiers.length - 1 ? 5 : 1,
    );
}

/** A party's name and lines at (x, y); returns the y below them. */
function partyBlock(doc: PDFKit.PDFDocument, party: Party | null, x: number, y: number, missing = ''): number {
  const width = 230;
  if (!party) {
    doc.font('Helvetica-Oblique').fontSize(10).text(missing, x, y, { width });
    return y + doc.heightOfString(missing, { width });
  }
  doc.font('Helvetica-Bold').fontSize(11).text(party.name, x, y, { width });
  let next = y + doc.heightOfString(party.name, { width }) + 2;
  doc.font('Helvetica').fontSize(10);
  for (const line of party.lines) {
    doc.text(line, x, next, { width });
    next += doc.heightOfString(line, { width }) + 1;
  }
  return next;
}

/** A large grey VOID across the page, under what is drawn after it. */
function voidMark(doc: PDFKit.PDFDocument): void {
  doc.save();
  doc.rotate(-35, { origin: [PAGE.width / 2, PAGE.height / 2] });
  doc.font('Helvetica-Bold').fontSize(140).fillColor('#d0d0d0');
  doc.text('VOID', 0, PAGE.height / 2 - 70, { width: PAGE.width, align: 'center', lineBreak: false });
  doc.restore();
  doc.fillColor('#000000');
}

/** "INV-2026-000001 · page 1 of 2" in the bottom margin of every page. */
function pageFooters(doc: PDFKit.PDFDocument, number: string): void {
  const { start, count } = doc.bufferedPageRange();
  for (let i = start; i < start + count; i++) {
    doc.switchToPage(i);
    // Text in the bottom margin would make PDFKit start a page; the footer belongs to this one.
    const bottomMargin = doc.page.margins.bottom;
    doc.page.margins.bottom = 0;
    doc
      .font('Helvetica')
      .fontSize(8)
      .fillColor('#000000')
      .text(`${number} · page ${i - start + 1} of ${count}`, MARGIN, PAGE.height - MARGIN + 15, {
        width: RIGHT - MARGIN,
        align: 'center',
        lineBreak: false,
      });
    doc.page.margins.bottom = bottomMargin;
  }
}
