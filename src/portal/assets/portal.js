/*
 * The customer portal page. It holds no data of its own: it reads the session token from the URL
 * fragment (browsers never send a fragment, so the token stays out of server logs), then asks the
 * billing API with it as a bearer token, and shows the answers as they are. Every figure on the
 * page is marked `data-figure` with what it is, so the browser test can hold each one to the API.
 * DOM is built with textContent only: nothing the API returns is ever parsed as HTML.
 */
'use strict';

(function portal() {
  const TOKEN_STORAGE = 'meterflow.portal.token';
  /** The customer's prepaid credit balance (src/api/routes/credits.ts). */
  const creditBalancePath = (customer) => `/v1/customers/${encodeURIComponent(customer)}/credits`;

  const main = document.getElementById('main');

  /** The token from `#<token>`, then out of the address bar; kept for this tab only so a reload still works. */
  function takeToken() {
    const fromFragment = decodeURIComponent(window.location.hash.slice(1));
    if (fromFragment) {
      sessionStorage.setItem(TOKEN_STORAGE, fromFragment);
      history.replaceState(null, '', window.location.pathname);
    }
    return sessionStorage.getItem(TOKEN_STORAGE);
  }

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && problem.detail) || `The API answered ${status}.`);
      this.status = status;
      this.problem = problem;
    }
  }

  function client(token) {
    return async function api(path, init = {}) {
      const res = await fetch(path, {
        ...init,
        headers: { Accept: 'application/json', Authorization: `Bearer ${token}`, ...(init.headers || {}) },
      });
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
      return res.json();
    };
  }

  /** `el('td', { class: 'num' }, 'text', child)`: attributes as given, children as text or nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  /** A figure the API answered, as it answered it, tagged with what it is. */
  const figure = (key, value, attrs) => el('span', { ...attrs, 'data-figure': key }, value);

  /** `2026-12-01T21:00:00.000Z` → `2026-12-01 21:00 UTC`. */
  const when = (iso) => `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
  /** An instant the API answered: shown as `when` gives it, the API's own value in `datetime`, tagged like any figure. */
  const instant = (key, iso) => el('time', { datetime: iso, 'data-figure': key }, when(iso));
  const q = (params) => new URLSearchParams(params).toString();

  function finish(state) {
    document.body.dataset.state = state;
    main.setAttribute('aria-busy', 'false');
  }

  function showNoAccess(reason) {
    document.getElementById('title').textContent = reason === 'missing' ? 'This page needs a portal link' : 'This portal link has expired';
    document.getElementById('subtitle').textContent = '';
    main.replaceChildren(
      el(
        'section',
        { 'aria-labelledby': 'no-access' },
        el('h2', { id: 'no-access' }, reason === 'missing' ? 'No portal link' : 'Link expired or revoked'),
        el(
          'p',
          {},
          reason === 'missing'
            ? 'Open this page through the link your provider gave you: the link carries your access.'
            : 'Portal links work for a short time only, and can be revoked. This one no longer works, so no usage or billing data is shown.',
        ),
        el('p', {}, 'Ask your provider for a new portal link.'),
      ),
    );
    finish('no-access');
    main.focus();
  }

  function showError(err) {
    main.replaceChildren(
      el(
        'section',
        { role: 'alert' },
        el('h2', {}, 'Something went wrong'),
        el('p', {}, `The billing API could not answer: ${err.message}`),
      ),
    );
    finish('error');
  }

  const limitStatus = {
    blocked: { text: 'Blocked', symbol: '✗', tone: 'bad' },
    over_limit_in_grace: { text: 'Over the limit (grace period running)', symbol: '⚠', tone: 'warn' },
    overage: { text: 'Over the limit (billed as overage)', symbol: '⚠', tone: 'warn' },
    ok: { text: 'Within the limit', symbol: '✓', tone: 'ok' },
  };

  function statusOf(entitlement) {
    if (!entitlement.allowed) return limitStatus.blocked;
    return limitStatus[entitlement.limit_state || 'ok'] || limitStatus.ok;
  }

  /** Share of the hard limit used, in whole percent (rounded down: 100% only once the limit is reached). */
  function percentOf(usage, hardLimit) {
    const limit = Number(hardLimit);
    return limit > 0 ? Math.floor((Number(usage) / limit) * 100) : null;
  }

  /**
   * Whether usage is at or over a soft threshold of the current plan. Judged from the usage, not
   * from the thresholds notified: those are notified once per period, so after a plan change they
   * can name a threshold of the old plan's limit that the new plan's is far from.
   */
  function thresholdReached(threshold, used, hardLimit) {
    if ('absolute' in threshold) return Number(used) >= Number(threshold.absolute);
    return hardLimit !== undefined && Number(used) * 100 >= threshold.percent * Number(hardLimit);
  }

  /** How the API names a threshold in `thresholds_notified` (src/domain/quota-policy.ts thresholdKey): "80%", or the decimal without trailing zeros. */
  function thresholdKey(threshold) {
    if ('percent' in threshold) return `${threshold.percent}%`;
    const text = threshold.absolute;
    return text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text;
  }

  /** Aggregations whose buckets add up to the period's usage: charted as a running total. */
  const additive = new Set(['count', 'sum']);

  /**
   * The points the chart draws: for a count or a sum the running total at the end of each bucket
   * (from 0 at the period start, the last bucket ending at the estimate's instant), so the line
   * climbs toward the limit as usage does; for max, latest and unique counts, which do not add
   * up, each bucket's own value at its start.
   */
  function chartPoints(meter, usage, period, asOf) {
    const buckets = usage.buckets || [];
    const seconds = (iso) => Date.parse(iso) / 1000;
    if (!additive.has(meter.aggregation)) {
      return [buckets.map((b) => seconds(b.start)), buckets.map((b) => (b.value === null ? null : Number(b.value)))];
    }
    const xs = [seconds(period.start)];
    const ys = [0];
    let total = 0;
    for (const b of buckets) {
      total += Number(b.value);
      xs.push(Math.min(seconds(b.end), seconds(asOf)));
      ys.push(total);
    }
    return [xs, ys];
  }

  function usageChart(container, meter, usage, period, asOf) {
    if (typeof uPlot !== 'function' || (usage.buckets || []).length === 0) return;
    const width = Math.max(280, container.clientWidth || 480);
    // Display only: the exact figures are in the table under the chart. Kept on its container so
    // the browser test can hold the drawn points to the API's series.
    container.plot = new uPlot(
      {
        width,
        height: 180,
        legend: { show: false },
        // The whole period on the x axis, so the chart also shows how far into it the customer is.
        scales: {
          x: { time: true, range: () => [Date.parse(period.start) / 1000, Date.parse(period.end) / 1000] },
          y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
        },
        axes: [{}, { size: 80 }],
        series: [{}, { label: meter.name, stroke: '#0b57d0', width: 2, fill: 'rgba(11, 87, 208, 0.12)', points: { show: true } }],
      },
      chartPoints(meter, usage, period, asOf),
      container,
    );
  }

  /**
   * Buckets small enough for the period to show a trend: minutes up to 6 hours (at most 360 of
   * them; a demo's 2-minute period gets 2), hours up to 3 days, days beyond.
   */
  function granularityFor(period) {
    const hours = (Date.parse(period.end) - Date.parse(period.start)) / 3_600_000;
    if (hours <= 6) return 'minute';
    return hours <= 72 ? 'hour' : 'day';
  }

  /** Charts to draw once their containers are in the page and have a width. */
  const pendingCharts = [];

  function usageSection(period, asOf, meters, usages, granularity) {
    return el(
      'section',
      { 'aria-labelledby': 'usage-heading' },
      el('h2', { id: 'usage-heading' }, 'Usage this period'),
      el('p', { class: 'note' }, 'From ', instant('period.start', period.start), ' to ', instant('period.end', period.end), '.'),
      el(
        'div',
        { class: 'meters' },
        meters.map((meter) => {
          const usage = usages[meter.code];
          const chart = el('div', {
            class: 'chart',
            role: 'img',
            'aria-label': additive.has(meter.aggregation)
              ? `Chart of ${meter.name} so far this period, adding up each ${granularity}; the table below holds the figures per ${granularity}.`
              : `Chart of ${meter.name} per ${granularity}; the table below holds the same figures.`,
          });
          const card = el(
            'article',
            { class: 'meter-card', 'aria-labelledby': `meter-${meter.code}` },
            el('h3', { id: `meter-${meter.code}` }, `${meter.name} (${meter.code})`),
            el('p', { class: 'total' }, figure(`usage.${meter.code}`, usage.value === null ? 'none' : usage.value)),
            el(
              'p',
              { class: 'note' },
              `${meter.aggregation} of `,
              figure(`usage.${meter.code}.event_count`, usage.event_count),
              ' events so far',
            ),
            chart,
            el(
              'details',
              {},
              el('summary', {}, `${meter.name} per ${granularity}, as a table`),
              el(
                'table',
                {},
                el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'From'), el('th', { scope: 'col', class: 'num' }, meter.name))),
                el(
                  'tbody',
                  {},
                  (usage.buckets || []).map((b) =>
                    el(
                      'tr',
                      {},
                      el('th', { scope: 'row' }, instant(`bucket.${meter.code}.${b.start}.start`, b.start)),
                      el('td', { class: 'num' }, figure(`bucket.${meter.code}.${b.start}`, b.value === null ? 'none' : b.value)),
                    ),
                  ),
                ),
              ),
            ),
          );
          pendingCharts.push(() => usageChart(chart, meter, usage, period, asOf));
          return card;
        }),
      ),
    );
  }

  function limitsSection(plan, meters, usages, entitlements) {
    if (plan.limits.length === 0) return null;
    const nameOf = (code) => (meters.find((m) => m.code === code) || { name: code }).name;
    return el(
      'section',
      { 'aria-labelledby': 'limits-heading' },
      el('h2', { id: 'limits-heading' }, 'Limits'),
      el(
        'table',
        {},
        el('caption', {}, 'Hard limits and the soft thresholds that notify you, for the current period'),
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            ['Meter', 'Used', 'Hard limit', 'Share of the limit', 'Remaining', 'Soft thresholds', 'Status'].map((h) =>
              el('th', { scope: 'col' }, h),
            ),
          ),
        ),
        el(
          'tbody',
          {},
          plan.limits.map((limit) => {
            const usage = usages[limit.meter];
            const entitlement = entitlements[limit.meter];
            const used = usage.value === null ? '0' : usage.value;
            const percent = limit.hard_limit === undefined ? null : percentOf(used, limit.hard_limit);
            const status = statusOf(entitlement);
            const notified = new Set(entitlement.thresholds_notified);
            return el(
              'tr',
              { 'data-meter': limit.meter },
              el('th', { scope: 'row' }, nameOf(limit.meter)),
              el('td', { class: 'num' }, figure(`limit.${limit.meter}.used`, used)),
              el(
                'td',
                { class: 'num' },
                limit.hard_limit === undefined ? 'none' : figure(`limit.${limit.meter}.hard_limit`, limit.hard_limit),
              ),
              el(
                'td',
                {},
                percent === null
                  ? 'no hard limit'
                  : [
                      el('progress', {
                        max: 100,
                        value: Math.min(percent, 100),
                        'aria-label': `${nameOf(limit.meter)}: ${percent}% of the limit used`,
                      }),
                      ' ',
                      figure(`limit.${limit.meter}.percent`, `${percent}%`),
                    ],
              ),
              el(
                'td',
                { class: 'num' },
                entitlement.remaining === null ? 'not yet evaluated' : figure(`limit.${limit.meter}.remaining`, entitlement.remaining),
              ),
              el(
                'td',
                {},
                limit.soft_thresholds.length === 0
                  ? 'none'
                  : el(
                      'ul',
                      { class: 'thresholds' },
                      limit.soft_thresholds.map((t) => {
                        const key = thresholdKey(t);
                        const reached = thresholdReached(t, used, limit.hard_limit);
                        return el(
                          'li',
                          { 'data-threshold': key },
                          `${key}: ${reached ? `reached${notified.has(key) ? ' (notified)' : ''}` : 'not reached'}`,
                          // An absolute threshold says how close usage is; a share of the hard limit has its column.
                          'absolute' in t ? [', ', figure(`limit.${limit.meter}.threshold.${key}`, `${used} of ${t.absolute}`)] : null,
                        );
                      }),
                    ),
              ),
              el(
                'td',
                {},
                el('span', { class: `status status-${status.tone}`, 'data-status': limit.meter }, `${status.symbol} ${status.text}`),
                entitlement.resets_at && !entitlement.allowed
                  ? el('div', {}, 'until ', instant(`limit.${limit.meter}.resets_at`, entitlement.resets_at))
                  : null,
              ),
            );
          }),
        ),
      ),
    );
  }

  function blockedAlert(meters, entitlements, upgradeUrl) {
    const blocked = meters.filter((m) => entitlements[m.code] && !entitlements[m.code].allowed);
    if (blocked.length === 0) return null;
    return el(
      'section',
      { class: 'alert', role: 'alert', 'aria-labelledby': 'blocked-heading' },
      el('h2', { id: 'blocked-heading' }, 'Usage blocked'),
      el(
        'p',
        {},
        `${blocked.map((m) => m.name).join(', ')} ${blocked.length === 1 ? 'is' : 'are'} over the plan's hard limit: new usage is refused until `,
        instant('blocked.resets_at', entitlements[blocked[0].code].resets_at),
        ' or until you upgrade.',
      ),
      el('p', {}, el('a', { href: upgradeUrl, id: 'upgrade-link' }, 'Upgrade your plan')),
    );
  }

  function upcomingSection(upcoming) {
    const money = (key, amount) => figure(key, `${amount} ${upcoming.currency}`);
    return el(
      'section',
      { 'aria-labelledby': 'upcoming-heading' },
      el('h2', { id: 'upcoming-heading' }, 'Upcoming invoice (estimate)'),
      el(
        'p',
        { class: 'note' },
        'Priced at ',
        instant('upcoming.as_of', upcoming.as_of),
        ' for the period from ',
        instant('upcoming.period.start', upcoming.period.start),
        ' to ',
        instant('upcoming.period.end', upcoming.period.end),
        `, on plan ${upcoming.plan}. It grows with your usage until the period closes.`,
      ),
      el(
        'table',
        {},
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            el('th', { scope: 'col' }, 'Item'),
            el('th', { scope: 'col', class: 'num' }, 'Quantity'),
            el('th', { scope: 'col', class: 'num' }, 'Amount'),
          ),
        ),
        el(
          'tbody',
          {},
          upcoming.lines.map((line) =>
            el(
              'tr',
              {},
              el('th', { scope: 'row' }, line.description),
              el('td', { class: 'num' }, line.quantity === null ? '' : figure(`upcoming.line.${line.position}.quantity`, line.quantity)),
              el('td', { class: 'num' }, money(`upcoming.line.${line.position}.amount`, line.amount)),
            ),
          ),
        ),
        el(
          'tfoot',
          {},
          el(
            'tr',
            {},
            el('th', { scope: 'row', colspan: 2 }, 'Estimated total'),
            el('td', { class: 'num' }, money('upcoming.total', upcoming.total)),
          ),
        ),
      ),
    );
  }

  /** Fetches the invoice's PDF with the session's token (a plain link could not carry it) and hands it to the browser. */
  async function downloadDocument(token, invoice, button, message) {
    button.disabled = true;
    message.textContent = 'Preparing the PDF…';
    try {
      const res = await fetch(`/v1/invoices/${encodeURIComponent(invoice.id)}`, {
        headers: { Accept: 'application/pdf', Authorization: `Bearer ${token}` },
      });
      if (!res.ok || !(res.headers.get('content-type') || '').startsWith('application/pdf')) {
        message.textContent = 'The PDF of this invoice is not available yet.';
        return;
      }
      const url = URL.createObjectURL(await res.blob());
      const link = el('a', { href: url, download: `${invoice.number}.pdf` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      message.textContent = 'Downloaded.';
    } finally {
      button.disabled = false;
    }
  }

  /** A draft has no number and no document yet (the API refuses it): said so, instead of a button that could only fail. */
  function documentCell(token, invoice) {
    if (invoice.status === 'draft') return el('span', { class: 'note', 'data-no-document': invoice.id }, 'Not issued yet');
    const message = el('span', { class: 'note', role: 'status' });
    const button = el('button', { type: 'button', 'aria-label': `Download the PDF of invoice ${invoice.number}` }, 'Download PDF');
    button.addEventListener('click', () => void downloadDocument(token, invoice, button, message));
    return [button, ' ', message];
  }

  function invoicesSection(token, invoices) {
    const statusText = { draft: 'Draft', finalized: 'Open', paid: 'Paid', payment_failed: 'Payment failed', void: 'Void' };
    return el(
      'section',
      { 'aria-labelledby': 'invoices-heading' },
      el('h2', { id: 'invoices-heading' }, 'Past invoices'),
      invoices.length === 0
        ? el('p', {}, 'No invoices yet.')
        : el(
            'table',
            {},
            el(
              'thead',
              {},
              el(
                'tr',
                {},
                ['Number', 'Period', 'Status', 'Total', 'Document'].map((h) =>
                  el('th', { scope: 'col', class: h === 'Total' ? 'num' : undefined }, h),
                ),
              ),
            ),
            el(
              'tbody',
              {},
              invoices.map((invoice) =>
                el(
                  'tr',
                  { 'data-invoice': invoice.id },
                  el('th', { scope: 'row' }, invoice.number === null ? 'none yet' : figure(`invoice.${invoice.id}.number`, invoice.number)),
                  el(
                    'td',
                    {},
                    instant(`invoice.${invoice.id}.period_start`, invoice.period.start),
                    ' – ',
                    instant(`invoice.${invoice.id}.period_end`, invoice.period.end),
                  ),
                  el('td', {}, statusText[invoice.status] || invoice.status),
                  el('td', { class: 'num' }, figure(`invoice.${invoice.id}.total`, `${invoice.total} ${invoice.currency}`)),
                  el('td', {}, documentCell(token, invoice)),
                ),
              ),
            ),
          ),
    );
  }

  /**
   * The credit section while the customer has credit left on a grant; nothing otherwise, nor where
   * the API runs without prepaid credits (no payment provider configured: the route is absent, 404).
   */
  async function creditSection(api, customer) {
    let balance;
    try {
      balance = await api(creditBalancePath(customer));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return null;
      throw err;
    }
    if (balance.grants.length === 0) return null;
    return el(
      'section',
      { 'aria-labelledby': 'credits-heading' },
      el('h2', { id: 'credits-heading' }, 'Credit balance'),
      el('p', { class: 'total' }, figure('credits.balance', `${balance.balance} ${balance.currency || ''}`.trim())),
    );
  }

  async function load() {
    const token = takeToken();
    if (!token) return showNoAccess('missing');
    const api = client(token);
    let session;
    try {
      session = await api('/v1/portal-sessions/current');
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        sessionStorage.removeItem(TOKEN_STORAGE);
        return showNoAccess('expired');
      }
      throw err;
    }
    const customer = session.customer;
    const [profile, upcoming, invoicePage, credits] = await Promise.all([
      api(`/v1/customers/${encodeURIComponent(customer)}`),
      api(`/v1/invoices/upcoming?${q({ customer })}`).catch((err) => {
        if (err instanceof ApiError && err.status === 404) return null;
        throw err;
      }),
      api(`/v1/invoices?${q({ customer, limit: 12 })}`),
      creditSection(api, customer),
    ]);
    document.title = `Usage and billing · ${profile.name}`;
    document.getElementById('title').textContent = `Usage and billing for ${profile.name}`;
    document
      .getElementById('subtitle')
      .replaceChildren(`Customer ${profile.external_id}. This link works until `, instant('session.expires_at', session.expires_at), '.');
    const sections = [];
    if (upcoming) {
      const plan = await api(`/v1/plans/${encodeURIComponent(upcoming.plan)}`);
      const codes = [...new Set([...plan.charges.map((c) => c.meter), ...plan.limits.map((l) => l.meter)])].sort();
      const granularity = granularityFor(upcoming.period);
      const meters = await Promise.all(codes.map((code) => api(`/v1/meters/${encodeURIComponent(code)}`)));
      const usages = Object.fromEntries(
        await Promise.all(
          codes.map(async (meter) => [
            meter,
            await api(`/v1/usage?${q({ customer, meter, from: upcoming.period.start, to: upcoming.period.end, granularity })}`),
          ]),
        ),
      );
      // The period's buckets still ahead hold no usage yet: the chart and its table stop at the estimate's instant.
      for (const usage of Object.values(usages)) usage.buckets = usage.buckets.filter((b) => b.start <= upcoming.as_of);
      const entitlements = Object.fromEntries(
        await Promise.all(
          plan.limits.map(async (l) => [
            l.meter,
            await api('/v1/entitlements/check', {
              method: 'POST',
              headers: { 'Content-Type': 'application/json' },
              body: JSON.stringify({ customer, meter: l.meter }),
            }),
          ]),
        ),
      );
      document.getElementById('subtitle').append(` Plan: ${plan.name}.`);
      sections.push(
        blockedAlert(meters, entitlements, session.upgrade_url),
        usageSection(upcoming.period, upcoming.as_of, meters, usages, granularity),
        limitsSection(plan, meters, usages, entitlements),
        upcomingSection(upcoming),
      );
    } else {
      sections.push(el('section', {}, el('h2', {}, 'No active subscription'), el('p', {}, 'There is no current billing period to show.')));
    }
    sections.push(credits, invoicesSection(token, invoicePage.data));
    main.replaceChildren(...sections.filter(Boolean));
    for (const draw of pendingCharts.splice(0)) draw();
    finish('ready');
  }

  load().catch(showError);
})();
