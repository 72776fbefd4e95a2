import type { Invoice } from '../store';
import { renderInvoiceHtml } from './html';
import { renderInvoicePdf } from './pdf';
import { invoiceView } from './view';

export const documentFormats = ['html', 'pdf'] as const;
export type DocumentFormat = (typeof documentFormats)[number];

const contentTypes = {
  html: 'text/html; charset=utf-8',
  pdf: 'application/pdf',
} as const satisfies Record<DocumentFormat, string>;

export interface InvoiceDocument {
  format: DocumentFormat;
  contentType: string;
  /** A file name for downloads: the invoice number and the format's extension. */
  filename: string;
  body: Buffer;
}

/**
 * An issued invoice (finalized, paid, payment failed or void) as a document, from its frozen
 * data alone: the same invoice in the same state always gives the same bytes. Throws for a draft,
 * which has no number; InvoiceService.document refuses drafts before it gets here.
 */
export async function renderInvoiceDocument(invoice: Invoice, format: DocumentFormat): Promise<InvoiceDocument> {
  const view = invoiceView(invoice);
  const body = format === 'pdf' ? await renderInvoicePdf(view) : Buffer.from(renderInvoiceHtml(view), 'utf8');
  return { format, contentType: contentTypes[format], filename: `${view.number}.${format}`, body };
}
