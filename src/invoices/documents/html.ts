import escapeHtml from 'escape-html';
import type { InvoiceView, LineView, Party, Section } from './view';

/**
 * The invoice as one self-contained, printable HTML page (inline styles, nothing fetched): the
 * view's text, escaped, in a fixed layout. Pure: the same view gives the same bytes.
 */
export function renderInvoiceHtml(view: InvoiceView): string {
  const title = `Invoice ${view.number}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}${view.voided ? ' (VOID)' : ''}</title>
<style>${style}</style>
</head>
<body>
<main class="invoice${view.voided ? ' void' : ''}">
${view.voided ? `<p class="void-mark" role="note">VOID since ${esc(view.voided.on)}: ${esc(view.voided.reason)}</p>\n` : ''}<header>
<section class="seller" aria-label="Seller">${view.seller ? party(view.seller) : '<p class="missing">Seller details were not recorded for this invoice.</p>'}</section>
<section class="meta">
<h1>${esc(title)}</h1>
<dl>
<dt>Issued</dt><dd>${esc(view.issuedOn)}</dd>
<dt>Period</dt><dd>${esc(view.period)}</dd>
<dt>Currency</dt><dd>${esc(view.currency)}</dd>
</dl>
</section>
</header>
<section class="bill-to" aria-label="Bill to"><h2>Bill to</h2>${party(view.billTo)}</section>
<table class="lines">
<thead><tr><th scope="col">Description</th><th scope="col" class="num">Quantity</th><th scope="col" class="num">Amount</th></tr></thead>
${view.sections.map(section).join('\n')}
</table>
<table class="totals">
<tbody>
${view.totals.map((t) => `<tr${t.emphasis ? ' class="emphasis"' : ''}><th scope="row">${esc(t.label)}</th><td class="num">${esc(t.amount)}</td></tr>`).join('\n')}
<tr class="due"><th scope="row">Amount due</th><td class="num">${esc(view.amountDue)}</td></tr>
</tbody>
</table>
<p class="status"><strong>Payment status:</strong> ${esc(view.paymentStatus)}</p>
</main>
</body>
</html>
`;
}

const esc = (text: string) => escapeHtml(text);

const party = (p: Party) => `<p class="name">${esc(p.name)}</p>${p.lines.map((l) => `<p>${esc(l)}</p>`).join('')}`;

function section(s: Section): string {
  const heading = `<tr class="section"><th scope="rowgroup" colspan="3">${esc(s.title)}${s.subtitle ? ` — ${esc(s.subtitle)}` : ''}</th></tr>`;
  return `<tbody>\n${heading}\n${s.lines.map(line).join('\n')}\n</tbody>`;
}

function line(l: LineView): string {
  const notes = l.notes.map((n) => `<br><span class="note">${esc(n)}</span>`).join('');
  const row = `<tr class="line"><td>${esc(l.description)}${notes}</td><td class="num">${esc(l.quantity ?? '')}</td><td class="num">${esc(l.amount)}</td></tr>`;
  if (l.tiers.length === 0) return row;
  const tiers = l.tiers
    .map(
      (t) =>
        `<tr><td>${esc(t.description)}</td><td class="num">${esc(t.units)}</td><td class="num">${esc(t.unitPrice)}</td><td class="num">${esc(t.flatFee)}</td><td class="num">${esc(t.amount)}</td></tr>`,
    )
    .join('');
  const breakdown = `<tr class="tiers"><td colspan="3"><table aria-label="Price breakdown of ${esc(l.description)}"><thead><tr><th scope="col">Tier</th><th scope="col" class="num">Units</th><th scope="col" class="num">Unit price</th><th scope="col" class="num">Flat fee</th><th scope="col" class="num">Amount (exact)</th></tr></thead><tbody>${tiers}</tbody></table></td></tr>`;
  return `${row}\n${breakdown}`;
}

const style = `
body { font-family: Helvetica, Arial, sans-serif; color: #111; margin: 0; }
.invoice { max-width: 52rem; margin: 2rem auto; padding: 0 1.5rem; position: relative; }
header { display: flex; justify-content: space-between; gap: 2rem; }
h1 { font-size: 1.5rem; margin: 0 0 .5rem; }
h2 { font-size: 1rem; margin: 1.5rem 0 .25rem; }
p { margin: .1rem 0; }
.name { font-weight: bold; }
.missing { font-style: italic; }
dl { display: grid; grid-template-columns: auto auto; gap: .1rem 1rem; margin: 0; }
dt { font-weight: bold; }
dd { margin: 0; }
table { width: 100%; border-collapse: collapse; }
.lines { margin-top: 1.5rem; }
th, td { text-align: left; padding: .3rem .4rem; vertical-align: top; }
.lines > thead th { border-bottom: 2px solid #111; }
.section th { padding-top: .8rem; border-bottom: 1px solid #999; }
.line td { border-bottom: 1px solid #ddd; }
.note { font-size: .85em; font-style: italic; }
.tiers table { font-size: .85em; margin: 0 0 .4rem 1.5rem; width: calc(100% - 1.5rem); }
.tiers th { font-weight: normal; text-decoration: underline; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.totals { width: auto; margin: 1rem 0 0 auto; }
.totals th { font-weight: normal; padding-right: 2rem; }
.totals .emphasis th, .totals .emphasis td, .totals .due th, .totals .due td { font-weight: bold; }
.totals .due th, .totals .due td { border-top: 2px solid #111; }
.status { margin-top: 1.5rem; }
.void-mark { border: 3px solid #111; padding: .5rem; font-size: 1.4rem; font-weight: bold; text-align: center; letter-spacing: .1em; }
.void::before { content: 'VOID'; position: absolute; top: 12rem; left: 0; right: 0; text-align: center; font-size: 10rem; font-weight: bold; color: #d0d0d0; transform: rotate(-35deg); z-index: -1; }
@media print { .invoice { margin: 0; max-width: none; } }
`;
