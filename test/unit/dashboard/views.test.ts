/**
 * The runs pages at scale: /runs shows each run's counts and at most RUNS_PAGE_ROWS rows, failed
 * and running first; /runs/<date> pages through every symbol and filters by status.
 */
import { describe, expect, it } from 'vitest';
import type { RunView } from '../../../dashboards/runs.js';
import { RUN_PAGE_ROWS, RUNS_PAGE_ROWS, runPage, runsPage } from '../../../dashboards/views.js';
import type { LedgerEntry, LedgerStatus } from '../../../src/ledger/ledger.js';

const STATUSES: LedgerStatus[] = ['success', 'success', 'success', 'pending', 'failed', 'running', 'skipped'];

function run(n: number, date = '20260105'): RunView {
  const entries: LedgerEntry[] = Array.from({ length: n }, (_, i) => ({
    symbol: `S${String(i).padStart(5, '0')}`,
    status: STATUSES[i % STATUSES.length]!,
    attempts: 1,
    costUsd: 0,
    updatedAt: '2026-01-05T00:00:00.000Z',
    history: [],
  }));
  return {
    date,
    entries,
    summary: null,
    statusLocation: '/s/status.json',
    summaryLocation: '/s/summary.json',
  };
}

/** The symbols of the rows shown, in page order. */
const rows = (html: string) => [...html.matchAll(/<tr data-symbol="([^"]+)">/g)].map((m) => m[1]!);
const statusOf = (v: RunView, symbol: string) => v.entries.find((e) => e.symbol === symbol)!.status;

describe('runs pages with many symbols', () => {
  it('/runs: counts for the whole run, failed and running rows first, a link to the rest', () => {
    const big = run(7000);
    const html = runsPage([big, run(3, '20260104')], false);
    const shown = rows(html);
    expect(shown).toHaveLength(RUNS_PAGE_ROWS + 3);
    expect(shown.slice(0, RUNS_PAGE_ROWS).every((s) => statusOf(big, s) === 'failed')).toBe(true);
    expect(html).toContain('7000 symbols: ');
    expect(html).toContain('<span class="success" data-count="success">3000 success</span>');
    expect(html).toContain('<span class="failed" data-count="failed">1000 failed</span>');
    expect(html).toContain(`${RUNS_PAGE_ROWS} of 7000 shown (failed and running first)`);
    expect(html).toContain('<a href="/runs/20260105">all symbols of 20260105</a>');
    // The small run is shown whole, with no link to more.
    expect(html.match(/data-more/g)).toHaveLength(1);
    expect(html.length).toBeLessThan(100_000);
  });

  it('/runs/<date>: every symbol page by page, in order, and one status at a time', () => {
    const big = run(1234);
    const first = runPage(big, false, { page: 1 });
    expect(rows(first)).toEqual(big.entries.slice(0, RUN_PAGE_ROWS).map((e) => e.symbol));
    expect(first).toContain('page 1 of 3');
    expect(first).toContain('<a rel="next" href="/runs/20260105?page=2">next</a>');
    expect(first).not.toContain('rel="prev"');

    const last = runPage(big, false, { page: 3 });
    expect(rows(last)).toEqual(big.entries.slice(2 * RUN_PAGE_ROWS).map((e) => e.symbol));
    expect(last).toContain('<a rel="prev" href="/runs/20260105?page=2">previous</a>');
    // Past the end: the last page.
    expect(rows(runPage(big, false, { page: 99 }))).toEqual(rows(last));

    const failed = runPage(big, false, { status: 'failed', page: 1 });
    const failedSymbols = big.entries.filter((e) => e.status === 'failed').map((e) => e.symbol);
    expect(rows(failed)).toEqual(failedSymbols);
    expect(failed).toContain('<strong>failed</strong>');
    expect(failed).toContain('<a href="/runs/20260105">all</a>');
    expect(failed).not.toContain('page 1 of');
  });
});
