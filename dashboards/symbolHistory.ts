/**
 * `/symbols/<SYMBOL>`: a symbol over the dates the ledger and the store have: the candidate's and
 * production's directionalHitRate, maxDrawdown and net_bps_after_costs, the cost per day (inline
 * SVG, dashboards/charts.ts), and the promotion history (every production manifest, current and
 * archived, and each date's decision).
 */
import type { Ledger, LedgerEntry } from '../src/ledger/ledger.js';
import { readManifest, type ProductionManifest } from '../src/promotion/manifest.js';
import type { CandidateMetrics } from '../src/promotion/metrics.js';
import type { PromotionResult } from '../src/promotion/guard.js';
import { keys, type ArtifactStore } from '../src/storage/index.js';
import { barChart, lineChart } from './charts.js';
import { esc, page } from './views.js';

export interface SymbolDay {
  date: string;
  entry: LedgerEntry;
  candidate: Partial<CandidateMetrics> | null;
  production: Partial<CandidateMetrics> | null;
  decision: Pick<PromotionResult, 'decision' | 'rule' | 'reason' | 'promoted'> | null;
}

export interface SymbolHistory {
  symbol: string;
  days: SymbolDay[];
  /** Current production first, then the archived ones, newest first. */
  productions: (ProductionManifest & { stamp: string | null })[];
}

const METRICS = ['directionalHitRate', 'maxDrawdown', 'net_bps_after_costs'] as const;

async function json<T>(store: ArtifactStore, key: string): Promise<T | null> {
  try {
    return (await store.exists(key)) ? await store.getJson<T>(key) : null;
  } catch {
    return null;
  }
}

/** Production in effect for a run date: the newest manifest of an earlier candidate date. */
function productionFor(date: string, productions: ProductionManifest[]): Partial<CandidateMetrics> | null {
  const before = productions
    .filter((m) => m.date < date)
    .sort((a, b) => b.promotedAt.localeCompare(a.promotedAt));
  return before[0]?.metrics ?? null;
}

export async function readSymbolHistory(
  ledger: Ledger,
  store: ArtifactStore,
  symbol: string,
  maxDates = 90,
): Promise<SymbolHistory | null> {
  const dates = (await ledger.dates()).slice(0, maxDates);
  const entries = (
    await Promise.all(dates.map(async (d) => [d, await ledger.getEntry(d, symbol)] as const))
  ).filter((x): x is readonly [string, LedgerEntry] => x[1] !== null);
  const productions: (ProductionManifest & { stamp: string | null })[] = [];
  const current = await readManifest(store, symbol);
  if (current) productions.push({ ...current, stamp: null });
  const historyPrefix = `${keys.productionPrefix(symbol)}history/`;
  const stamps = [
    ...new Set(
      (await store.list(historyPrefix))
        .filter((k) => k.endsWith('/manifest.json'))
        .map((k) => k.slice(historyPrefix.length).split('/')[0]!),
    ),
  ].sort((a, b) => b.localeCompare(a));
  for (const stamp of stamps) {
    const m = await readManifest(store, symbol, keys.productionHistory(symbol, stamp, 'manifest.json'));
    if (m) productions.push({ ...m, stamp });
  }
  if (entries.length === 0 && productions.length === 0) return null;
  const days = await Promise.all(
    entries.map(async ([date, entry]) => {
      const decision = await json<PromotionResult>(store, keys.candidate(symbol, date, 'decision.json'));
      const candidate =
        decision?.candidate ??
        (await json<CandidateMetrics>(store, keys.candidate(symbol, date, 'metrics.json')));
      const production =
        decision && decision.production !== undefined
          ? decision.production
          : productionFor(date, productions);
      return {
        date,
        entry,
        candidate: candidate ?? null,
        production: production ?? null,
        decision: decision
          ? {
              decision: decision.decision,
              rule: decision.rule,
              reason: decision.reason,
              promoted: decision.promoted,
            }
          : null,
      };
    }),
  );
  days.sort((a, b) => a.date.localeCompare(b.date));
  return { symbol, days, productions };
}

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const short = (d: string) => `${d.slice(4, 6)}-${d.slice(6, 8)}`;

export function symbolHistoryPage(h: SymbolHistory, readOnly: boolean): string {
  const labels = h.days.map((d) => short(d.date));
  const charts = METRICS.map((m) =>
    lineChart(m, m, labels, [
      { name: 'candidate', color: '#0969da', values: h.days.map((d) => num(d.candidate?.[m])) },
      {
        name: 'production',
        color: '#bf8700',
        dashed: true,
        values: h.days.map((d) => num(d.production?.[m])),
      },
    ]),
  );
  charts.push(
    barChart(
      'cost',
      'cost per day ($)',
      labels,
      h.days.map((d) => d.entry.costUsd || 0),
      '#8250df',
    ),
  );
  const dayRows = [...h.days]
    .reverse()
    .map(
      (d) =>
        `<tr data-date="${esc(d.date)}"><td><a href="/runs/${esc(d.date)}/${esc(h.symbol)}">${esc(d.date)}</a></td><td class="${esc(
          d.entry.status,
        )}">${esc(d.entry.status)}</td><td class="num">$${(d.entry.costUsd || 0).toFixed(4)}</td><td>${esc(
          d.decision?.decision ?? d.entry.decision ?? '',
        )}</td><td>${esc(d.decision?.rule ?? '')}</td><td>${d.decision?.promoted ? 'published' : ''}</td><td>${esc(
          d.decision?.reason ?? '',
        )}</td></tr>`,
    )
    .join('');
  const prodRows = h.productions
    .map(
      (m) =>
        `<tr data-production="${esc(m.stamp ?? 'current')}"><td>${m.stamp ? esc(m.stamp) : '<strong>current</strong>'}</td><td>${esc(
          m.promotedAt,
        )}</td><td>${esc(m.date)}</td><td>${esc(m.rule)}</td><td class="num">${esc(
          num(m.metrics.directionalHitRate)?.toFixed(4) ?? '',
        )}</td><td class="num">${esc(num(m.metrics.maxDrawdown)?.toFixed(4) ?? '')}</td><td class="num">${esc(
          num(m.metrics.net_bps_after_costs)?.toFixed(2) ?? '',
        )}</td></tr>`,
    )
    .join('');
  const body = `<p><a href="/runs">all runs</a></p><h1>${esc(h.symbol)}</h1>
<div class="charts">${charts.join('\n')}</div>
<h3>promotion history</h3>
${
  prodRows
    ? `<table data-promotions><thead><tr><th>production</th><th>promoted at</th><th>candidate date</th><th>rule</th><th>hit rate</th><th>max drawdown</th><th>net bps</th></tr></thead><tbody>${prodRows}</tbody></table>`
    : '<p class="muted">no production model yet</p>'
}
<h3>decisions per date</h3>
<table data-days><thead><tr><th>date</th><th>status</th><th>cost</th><th>decision</th><th>rule</th><th></th><th>reason</th></tr></thead><tbody>${dayRows}</tbody></table>`;
  return page(`${h.symbol} history`, body, readOnly);
}
