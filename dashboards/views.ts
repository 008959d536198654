import type { LedgerEntry, LedgerStatus } from '../src/ledger/ledger.js';
import { LEDGER_STATUSES } from '../src/ledger/types.js';
import { stackedBar } from './charts.js';
import type { ArtifactLink, RunView, SymbolView } from './runs.js';

/** HTML-escapes text and attribute values. */
export function esc(value: unknown): string {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const usd = (x: number | undefined) => (typeof x === 'number' ? `$${x.toFixed(4)}` : '');
const fixed = (x: number | undefined, digits = 2) => (typeof x === 'number' ? x.toFixed(digits) : '');

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1f2328}
header{background:#24292f;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:center}
header a{color:#fff;text-decoration:none}header .ro{margin-left:auto;background:#9a6700;padding:2px 8px;border-radius:4px}
main{padding:10px 20px}table{border-collapse:collapse;margin:8px 0 24px}
th,td{border-bottom:1px solid #d0d7de;padding:4px 10px;text-align:left;white-space:nowrap}
td.num{text-align:right}.success{color:#1a7f37}.failed{color:#cf222e}.running{color:#0969da}.waiting_capacity{color:#9a6700}
.skipped,.pending{color:#6e7781}code{font-size:12px}.muted{color:#6e7781}\n[data-pager] strong,[data-pager] a{margin:0 2px}
.charts{display:flex;flex-wrap:wrap;gap:8px 24px}[data-cost] svg{vertical-align:middle;margin-left:12px}`;

export function page(title: string, body: string, readOnly: boolean): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · retrain</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>${STYLE}</style></head>
<body><header><strong>retrain</strong><a href="/queues">Queues</a><a href="/runs">Runs</a><a href="/metrics">Metrics</a>${
    readOnly ? '<span class="ro">read-only</span>' : ''
  }</header><main>${body}</main></body></html>`;
}

/** A symbol waiting for capacity: since when (UTC). */
function waitingSince(e: LedgerEntry): string {
  if (e.status !== 'waiting_capacity' || !e.waitingSince) return '';
  return ` <span data-waiting-since="${esc(e.waitingSince)}">since ${esc(e.waitingSince.slice(11, 19))}Z</span>`;
}

function row(date: string, e: LedgerEntry): string {
  const cell = (col: string, v: string, cls = '') =>
    `<td data-col="${col}"${cls ? ` class="${cls}"` : ''}>${v}</td>`;
  return `<tr data-symbol="${esc(e.symbol)}">${[
    cell('symbol', `<a href="/runs/${esc(date)}/${esc(e.symbol)}">${esc(e.symbol)}</a>`),
    cell('status', esc(e.status) + waitingSince(e), esc(e.status)),
    cell('state', esc(e.state ?? '')),
    cell('attempts', esc(e.attempts), 'num'),
    cell('minutes', esc(fixed(e.trainMinutes)), 'num'),
    cell('cost', esc(usd(e.costUsd)), 'num'),
    cell('net_bps', esc(fixed(e.net_bps_after_costs)), 'num'),
    cell('decision', esc(e.decision ?? '')),
    cell('reason', esc(e.reason ?? '')),
    cell('artifacts', e.jobId ? `<a href="/runs/${esc(date)}/${esc(e.symbol)}">artifacts</a>` : ''),
    cell('history', `<a href="/symbols/${esc(e.symbol)}">history</a>`),
  ].join('')}</tr>`;
}

/** Rows a run shows on /runs before it links to its own page; rows per page of /runs/<date>. */
export const RUNS_PAGE_ROWS = 50;
export const RUN_PAGE_ROWS = 500;

/** Failed first, then what is still moving, then the rest: what a reader looks for first. */
const ATTENTION: Record<LedgerStatus, number> = {
  failed: 0,
  waiting_capacity: 1,
  running: 1,
  pending: 2,
  success: 3,
  skipped: 4,
};

/** Which rows of a run to show: a status filter, a page, a page size. */
export interface RowsView {
  status?: LedgerStatus;
  page: number;
  perPage: number;
  /** Order by ATTENTION (the /runs overview) rather than by symbol. */
  attentionFirst?: boolean;
}

function counts(entries: LedgerEntry[]): string {
  const by = new Map<LedgerStatus, number>();
  for (const e of entries) by.set(e.status, (by.get(e.status) ?? 0) + 1);
  const parts = LEDGER_STATUSES.filter((st) => by.has(st)).map(
    (st) => `<span class="${st}" data-count="${st}">${by.get(st)} ${st}</span>`,
  );
  return `<p data-counts>${entries.length} symbols${parts.length ? `: ${parts.join(', ')}` : ''}</p>`;
}

/** Colours of the statuses in a run's status bar. */
const STATUS_COLORS: Record<LedgerStatus, string> = {
  success: '#1a7f37',
  failed: '#cf222e',
  running: '#0969da',
  waiting_capacity: '#9a6700',
  pending: '#8c959f',
  skipped: '#d0d7de',
};

/** What the run cost (the summary's total once finalized, else what is booked so far) and its status bar. */
function costAndBar(run: RunView): string {
  const booked = run.entries.reduce((a, e) => a + (e.costUsd || 0), 0);
  const cost = run.summary ? run.summary.total_cost_usd : booked;
  const bar = stackedBar(
    `status-${run.date}`,
    LEDGER_STATUSES.map((st) => ({
      label: st,
      count: run.entries.filter((e) => e.status === st).length,
      color: STATUS_COLORS[st],
    })),
  );
  return `<p data-cost="${esc(cost)}">cost ${esc(usd(cost))}${run.summary ? '' : ' so far'}${bar}</p>`;
}

function runSection(run: RunView, view: RowsView): string {
  const s = run.summary;
  const summary = s
    ? `<p data-summary>${esc(s.succeeded)} succeeded, ${esc(s.failed)} failed, ${esc(s.skipped)} skipped;
wall ${esc(fixed(s.total_wall_minutes))} min; cost ${esc(usd(s.total_cost_usd))}; published to production: ${
        s.promoted.length ? esc(s.promoted.join(', ')) : 'none'
      }</p>`
    : '<p class="muted">not finalized yet (no engine_summary.json)</p>';
  let rows = view.status ? run.entries.filter((e) => e.status === view.status) : run.entries;
  if (view.attentionFirst) {
    rows = [...rows].sort(
      (a, b) => ATTENTION[a.status] - ATTENTION[b.status] || a.symbol.localeCompare(b.symbol),
    );
  }
  const pages = Math.max(1, Math.ceil(rows.length / view.perPage));
  const page = Math.min(Math.max(1, view.page), pages);
  const shown = rows.slice((page - 1) * view.perPage, page * view.perPage);
  const base = `/runs/${esc(run.date)}`;
  const query = (p: number, st = view.status) =>
    `${base}?${new URLSearchParams({ ...(st ? { status: st } : {}), page: String(p) }).toString()}`;
  let more = '';
  if (view.attentionFirst && rows.length > shown.length) {
    more = `<p data-more>${shown.length} of ${rows.length} shown (failed and running first): <a href="${base}">all symbols of ${esc(run.date)}</a></p>`;
  } else if (!view.attentionFirst) {
    const filters = ['all', ...LEDGER_STATUSES]
      .map((st) =>
        (st === 'all' ? !view.status : view.status === st)
          ? `<strong>${st}</strong>`
          : `<a href="${st === 'all' ? base : query(1, st as LedgerStatus)}">${st}</a>`,
      )
      .join(' · ');
    const pager =
      pages > 1
        ? ` · page ${page} of ${pages}${page > 1 ? ` <a rel="prev" href="${query(page - 1)}">previous</a>` : ''}${
            page < pages ? ` <a rel="next" href="${query(page + 1)}">next</a>` : ''
          }`
        : '';
    more = `<p data-pager>${filters}${pager}</p>`;
  }
  return `<section data-date="${esc(run.date)}"><h2><a href="${base}">${esc(run.date)}</a></h2>
${summary}
${costAndBar(run)}
${counts(run.entries)}
${more}
<table><thead><tr><th>symbol</th><th>status</th><th>state</th><th>attempts</th><th>minutes</th><th>cost</th><th>net_bps</th><th>decision</th><th>reason</th><th></th><th></th></tr></thead>
<tbody>${shown.map((e) => row(run.date, e)).join('\n')}</tbody></table>
<p class="muted">ledger mirror <code>${esc(run.statusLocation)}</code>${
    s ? ` · summary <code>${esc(run.summaryLocation)}</code>` : ''
  }</p></section>`;
}

/** The recent runs, each with its counts and at most RUNS_PAGE_ROWS rows, failed and running first. */
export function runsPage(runs: RunView[], readOnly: boolean): string {
  const view: RowsView = { page: 1, perPage: RUNS_PAGE_ROWS, attentionFirst: true };
  const body = runs.length
    ? `<h1>Runs</h1>${runs.map((r) => runSection(r, view)).join('\n')}`
    : '<h1>Runs</h1><p>The ledger is empty: no run has been planned yet.</p>';
  return page('Runs', body, readOnly);
}

/** One run, RUN_PAGE_ROWS symbols a page, optionally only those of one status. */
export function runPage(run: RunView, readOnly: boolean, view: Partial<RowsView> = {}): string {
  return page(
    `Run ${run.date}`,
    `<p><a href="/runs">all runs</a></p>${runSection(run, { page: 1, perPage: RUN_PAGE_ROWS, ...view })}`,
    readOnly,
  );
}

function files(title: string, list: ArtifactLink[]): string {
  if (!list.length) return `<h3>${esc(title)}</h3><p class="muted">none</p>`;
  return `<h3>${esc(title)}</h3><table><tbody>${list
    .map(
      (a) =>
        `<tr><td><a href="/files/${a.key.split('/').map(encodeURIComponent).join('/')}">${esc(
          a.key.slice(a.key.lastIndexOf('/') + 1),
        )}</a></td><td><code>${esc(a.location)}</code></td></tr>`,
    )
    .join('')}</tbody></table>`;
}

export function symbolPage(v: SymbolView, readOnly: boolean): string {
  const e = v.entry;
  const history = e.history
    .map(
      (h) =>
        `<tr><td class="num">${esc(h.attempt)}</td><td>${esc(h.startedAt)}</td><td>${esc(h.endedAt ?? '')}</td><td>${esc(
          h.outcome ?? '',
        )}</td><td>${esc(h.reason ?? '')}</td></tr>`,
    )
    .join('');
  const body = `<p><a href="/runs/${esc(v.date)}">run ${esc(v.date)}</a></p>
<h1>${esc(e.symbol)} · ${esc(v.date)}</h1>
<table><tbody>${row(v.date, e)}</tbody></table>
${e.error ? `<p class="failed">${esc(e.error.type)}: ${esc(e.error.message)}</p>` : ''}
<h3>attempts</h3><table><thead><tr><th>#</th><th>started</th><th>ended</th><th>outcome</th><th>reason</th></tr></thead><tbody>${history}</tbody></table>
${files(`artifacts (${e.jobId ?? 'no job'})`, v.artifacts)}
${files('candidate', v.candidate)}`;
  return page(`${e.symbol} ${v.date}`, body, readOnly);
}

export function notFoundPage(what: string, readOnly: boolean): string {
  return page('Not found', `<h1>Not found</h1><p>${esc(what)}</p>`, readOnly);
}
