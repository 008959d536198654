import { describe, expect, it } from 'vitest';
import {
  MAX_MESSAGE_CHARS,
  fitLines,
  formatFailures,
  formatRunCompleted,
  formatRunStarted,
  type SymbolFailure,
} from '../../../src/notify/format.js';
import { buildSummary } from '../../../src/telemetry/summary.js';
import type { LedgerEntry } from '../../../src/ledger/ledger.js';

const failure = (symbol: string, extra: Partial<SymbolFailure> = {}): SymbolFailure => ({
  runId: '20260110-1',
  date: '20260110',
  symbol,
  reason: 'recipe_failed',
  message: 'step 1 exited with code 1',
  attempts: 1,
  ...extra,
});

describe('notification texts', () => {
  it('start message: run id, date, symbol counts, mode, cap, driver, promotion', () => {
    const text = formatRunStarted({
      runId: '20260110-2',
      date: '20260110',
      symbols: 20,
      enqueued: 18,
      skipped: 2,
      inFlight: 0,
      mode: 'hybrid',
      cap: 12,
      driver: 'vast',
      promote: 'auto',
    });
    expect(text).toBe(
      [
        'retrain run 20260110-2 started (2026-01-10)',
        '20 symbols: 18 to train, 2 skipped',
        'mode hybrid (at most 12 at once), driver vast, promotion auto',
      ].join('\n'),
    );
  });

  it('start message tells symbols left alone because they are still in flight', () => {
    const text = formatRunStarted({
      runId: 'r',
      date: '20260110',
      symbols: 1,
      enqueued: 0,
      skipped: 0,
      inFlight: 1,
      mode: 'sequential',
      cap: 1,
      driver: 'local',
      promote: 'off',
    });
    expect(text).toContain('1 symbol: 0 to train, 0 skipped, 1 already in flight');
  });

  it('one failure: the symbol in the header and a `SYMBOL: reason` line', () => {
    expect(
      formatFailures([failure('BTCUSDT', { attempts: 3, reason: 'timeout', message: 'limit 45 min' })]),
    ).toBe(
      'retrain run 20260110-1 (2026-01-10): BTCUSDT failed\nBTCUSDT: timeout — limit 45 min (after 3 attempts)',
    );
  });

  it('failures together: one message, a count, one line each; long messages are cut to one short line', () => {
    const long = `line one ${'x'.repeat(500)}\nsecond line`;
    const text = formatFailures([
      failure('BTCUSDT'),
      failure('ETHUSDT', { message: long }),
      failure('SOLUSDT'),
    ]);
    const lines = text.split('\n');
    expect(lines[0]).toBe('retrain run 20260110-1 (2026-01-10): 3 symbols failed');
    expect(lines.slice(1).map((l) => l.split(':')[0])).toEqual(['BTCUSDT', 'ETHUSDT', 'SOLUSDT']);
    expect(lines[2]!.length).toBeLessThan(200);
    expect(text).not.toContain('second line');
  });

  it('a thousand failures still fit one Telegram message, ending with how many were left out', () => {
    const many = Array.from({ length: 1000 }, (_, i) => failure(`SYM${String(i).padStart(4, '0')}USDT`));
    const text = formatFailures(many);
    expect(text.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
    const lines = text.split('\n');
    const shown = lines.filter((l) => /^SYM\d{4}USDT: /.test(l)).length;
    expect(lines.at(-1)).toBe(`… and ${1000 - shown} more`);
    expect(shown).toBeGreaterThan(20);
  });

  it('fitLines keeps everything when it fits and never cuts a line in the middle', () => {
    expect(fitLines(['h'], ['a', 'b'])).toBe('h\na\nb');
    const out = fitLines(['header'], ['aaaaaaaaaa', 'bbbbbbbbbb', 'cccccccccc'], 40);
    expect(out.length).toBeLessThanOrEqual(40);
    expect(
      out
        .split('\n')
        .every(
          (l) =>
            ['header', 'aaaaaaaaaa', 'bbbbbbbbbb', 'cccccccccc'].includes(l) || /^… and \d+ more$/.test(l),
        ),
    ).toBe(true);
  });

  it('completion summary: counts, wall time, cost, promoted symbols, failed symbols with reasons', () => {
    const entry = (e: Partial<LedgerEntry>) => ({ attempts: 1, history: [], ...e }) as LedgerEntry;
    const summary = buildSummary({
      date: '20260110',
      runId: '20260110-1',
      symbols: ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'XRPUSDT'],
      ledger: {
        BTCUSDT: entry({ status: 'success', trainMinutes: 2, costUsd: 0.05 }),
        ETHUSDT: entry({ status: 'success', trainMinutes: 3, costUsd: 0.07 }),
        SOLUSDT: entry({ status: 'failed', reason: 'timeout', costUsd: 0.1 }),
        XRPUSDT: entry({ status: 'skipped', reason: 'no_data' }),
      },
      startedAt: new Date('2026-01-11T00:15:00Z'),
      endedAt: new Date('2026-01-11T00:27:30Z'),
      promoted: ['BTCUSDT'],
      budgetUsd: 5,
    });
    expect(formatRunCompleted(summary)).toBe(
      [
        'retrain run 20260110-1 finished (2026-01-10)',
        '2 succeeded, 1 failed, 1 skipped (of 4)',
        'wall time 12.5 min, cost $0.2200 of a $5.00 budget',
        'promoted: BTCUSDT',
        'failed:',
        'SOLUSDT (timeout)',
      ].join('\n'),
    );
  });

  it('completion summary with nothing promoted and nothing failed', () => {
    const summary = buildSummary({
      date: '20260110',
      runId: 'r1',
      symbols: ['BTCUSDT'],
      ledger: { BTCUSDT: { status: 'success', attempts: 1, history: [] } as unknown as LedgerEntry },
      startedAt: new Date(0),
      endedAt: new Date(60_000),
    });
    const text = formatRunCompleted(summary);
    expect(text).toContain('1 succeeded, 0 failed, 0 skipped (of 1)');
    expect(text).toContain('wall time 1.0 min, cost $0.00');
    expect(text).toContain('promoted: none');
    expect(text).not.toContain('failed:');
  });
});
