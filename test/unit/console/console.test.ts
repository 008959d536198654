/**
 * The console's pure parts: the run estimate, the cost report's grouping and tolerance, which runs a
 * cancel names, how a followed job log is split and resumed, the start message's estimate line.
 */
import { describe, expect, it } from 'vitest';
import { cancelTargets } from '../../../src/cli/cancel.js';
import { splitAttempts, unseenLines } from '../../../src/cli/logs.js';
import { buildCostReport, overTolerance } from '../../../src/ledger/costReport.js';
import type { LedgerEntry } from '../../../src/ledger/ledger.js';
import { formatRunStarted } from '../../../src/notify/format.js';
import { estimateLine, estimateRun } from '../../../src/vast/estimate.js';

const entry = (symbol: string, extra: Partial<LedgerEntry> = {}): LedgerEntry => ({
  symbol,
  status: 'success',
  attempts: 1,
  costUsd: 0,
  history: [],
  updatedAt: '2026-01-10T00:00:00.000Z',
  ...extra,
});

describe('estimateRun', () => {
  it('one rental per symbol over the cap cheapest offers, training plus overhead', () => {
    // 4 symbols of 30 min + 6 min overhead, cap 2: the two cheapest at $0.20 and $0.30 (mean 0.25).
    const e = estimateRun({
      prices: [0.2, 0.3, 0.9],
      symbols: 4,
      minutesPerSymbol: 30,
      overheadMinutes: 6,
      cap: 2,
    })!;
    expect(e).toMatchObject({ instances: 4, instanceHours: 2.4, usd: 0.6, hourly: 0.25, pool: false });
  });
  it('pooled: ceil(cap/slots) instances, each booting once and serving its share in turn', () => {
    // 4 symbols, cap 2, 1 slot: 2 instances × (6 + 2 × 30 + 3) min = 69 min each.
    const e = estimateRun({
      prices: [0.2, 0.3],
      symbols: 4,
      minutesPerSymbol: 30,
      overheadMinutes: 6,
      cap: 2,
      pool: { slotsPerHost: 1 },
    })!;
    expect(e.instances).toBe(2);
    expect(e.instanceHours).toBeCloseTo((2 * 69) / 60, 4);
    expect(e.usd).toBeCloseTo((0.2 + 0.3) * (69 / 60), 4);
  });
  it('no offer: no estimate; no symbol: nothing', () => {
    expect(
      estimateRun({ prices: [], symbols: 3, minutesPerSymbol: 10, overheadMinutes: 2, cap: 3 }),
    ).toBeNull();
    expect(estimateLine(null, 10)).toBe('estimate: no offer meets the constraints right now');
    expect(
      estimateRun({ prices: [1], symbols: 0, minutesPerSymbol: 10, overheadMinutes: 2, cap: 3 })!.usd,
    ).toBe(0);
  });
  it('the start message carries the line', () => {
    const line = estimateLine(
      estimateRun({ prices: [0.5], symbols: 2, minutesPerSymbol: 45, overheadMinutes: 2, cap: 2 }),
      45,
      true,
    );
    expect(line).toBe(
      'estimate: at most $0.78 for 2 symbols × 45 min (2 instances, 1.57 instance-hours at ~$0.500/h)',
    );
    const text = formatRunStarted({
      runId: '20260110-1',
      date: '20260110',
      symbols: 2,
      enqueued: 2,
      skipped: 0,
      inFlight: 0,
      mode: 'hybrid',
      cap: 2,
      driver: 'vast',
      promote: 'off',
      estimate: line,
    });
    expect(text.split('\n').at(-1)).toBe(line);
  });
});

describe('buildCostReport', () => {
  const ledger = {
    '20260110': {
      BTCUSDT: entry('BTCUSDT', { runId: '20260110-1', jobId: 'train__BTCUSDT__20260110', costUsd: 0.1 }),
      ETHUSDT: entry('ETHUSDT', { runId: '20260110-1', jobId: 'train__ETHUSDT__20260110', costUsd: 0.2 }),
    },
    '20260111': {
      BTCUSDT: entry('BTCUSDT', { runId: '20260111-1', jobId: 'train__BTCUSDT__20260111', costUsd: 0.3 }),
    },
  };
  const tolerance = { usd: 0.01, pct: 10 };

  it('booked per symbol, run and day, with the pool idle time booked to its run', () => {
    const base = { from: '20260110', to: '20260111', ledger, poolIdle: { '20260110-1': 0.05 }, tolerance };
    const bySymbol = buildCostReport({ ...base, by: 'symbol' });
    expect(bySymbol.rows.map((r) => [r.key, r.booked])).toEqual([
      ['(pool idle)', 0.05],
      ['BTCUSDT', 0.4],
      ['ETHUSDT', 0.2],
    ]);
    expect(bySymbol.total.booked).toBeCloseTo(0.65, 9);
    expect(bySymbol.reconciled).toBe(false);
    expect(buildCostReport({ ...base, by: 'run' }).rows.map((r) => [r.key, r.booked])).toEqual([
      ['20260110-1', 0.35],
      ['20260111-1', 0.3],
    ]);
    expect(buildCostReport({ ...base, by: 'day' }).rows.map((r) => [r.key, r.booked])).toEqual([
      ['20260110', 0.35],
      ['20260111', 0.3],
    ]);
  });

  it('reconciled: billed by label, the difference, flagged over the tolerance; other dates left out', () => {
    const r = buildCostReport({
      from: '20260110',
      to: '20260110',
      by: 'symbol',
      ledger: { '20260110': ledger['20260110'] },
      poolIdle: {},
      tolerance,
      billed: [
        { jobId: 'train__BTCUSDT__20260110', instanceId: 1, usd: 0.105 },
        { jobId: 'train__ETHUSDT__20260110', instanceId: 2, usd: 0.7 },
        { jobId: 'train__BTCUSDT__20260111', instanceId: 3, usd: 9 },
      ],
    });
    expect(r.rows).toEqual([
      { key: 'BTCUSDT', booked: 0.1, billed: 0.105, difference: 0.005, flagged: false },
      { key: 'ETHUSDT', booked: 0.2, billed: 0.7, difference: 0.5, flagged: true },
    ]);
    expect(r.total).toMatchObject({ booked: 0.3, billed: 0.805, difference: 0.505, flagged: true });
  });

  it('the tolerance needs both the dollars and the share exceeded', () => {
    expect(overTolerance(100, 105, tolerance)).toBe(false);
    expect(overTolerance(100, 111, tolerance)).toBe(true);
    expect(overTolerance(0.001, 0.009, tolerance)).toBe(false);
    expect(overTolerance(0, 0.02, tolerance)).toBe(true);
  });
});

describe('cancelTargets', () => {
  const entries = {
    A: entry('A', { status: 'running', runId: '20260110-2' }),
    B: entry('B', { status: 'pending', runId: '20260110-2' }),
    C: entry('C', { status: 'success', runId: '20260110-2' }),
    D: entry('D', { status: 'running', runId: '20260110-1' }),
  };
  it('only what is pending or running, per run; narrowed by run and symbol', () => {
    expect(cancelTargets('20260110', entries, {})).toEqual([
      { runId: '20260110-2', date: '20260110', symbols: ['A', 'B'] },
      { runId: '20260110-1', date: '20260110', symbols: ['D'] },
    ]);
    expect(cancelTargets('20260110', entries, { run: '20260110-1' })).toEqual([
      { runId: '20260110-1', date: '20260110', symbols: ['D'] },
    ]);
    expect(cancelTargets('20260110', entries, { symbol: 'B' })).toEqual([
      { runId: '20260110-2', date: '20260110', symbol: 'B', symbols: ['B'] },
    ]);
    expect(cancelTargets('20260110', entries, { symbol: 'C' })).toEqual([]);
    expect(() => cancelTargets('20260110', entries, { symbol: 'Z' })).toThrow(/no such symbol/);
  });
});

describe('following a job log', () => {
  it('splits attempts at their PENDING line', () => {
    const lines = [
      '2026-01-10T00:00:00.000Z PENDING',
      'a',
      '2026-01-10T00:00:01.000Z EXECUTING',
      '2026-01-10T00:01:00.000Z PENDING',
      'b',
    ];
    expect(splitAttempts(lines)).toEqual([lines.slice(0, 3), lines.slice(3)]);
  });
  it('prints only what is new, also when the capped list lost lines at its head', () => {
    expect(unseenLines(['a', 'b'], ['a', 'b', 'c'], 2)).toEqual(['c']);
    // keepLogs dropped 'a' and 'b' while 'd' and 'e' came.
    expect(unseenLines(['a', 'b', 'c'], ['c', 'd', 'e'], 3)).toEqual(['d', 'e']);
    expect(unseenLines(['x', 'y', 'z'], ['x', 'y', 'z'], 3)).toEqual([]);
    expect(unseenLines([], ['a'], 0)).toEqual(['a']);
    // Repeated lines are not mistaken for ones already printed.
    expect(unseenLines(['.', '.', '.'], ['.', '.', '.', '.'], 3)).toEqual(['.']);
  });
});
