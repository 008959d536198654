import { describe, expect, it } from 'vitest';
import { driverAlias, normalizeArgv } from '../../../src/cli/aliases.js';
import { parseRunOptions } from '../../../src/cli/runOptions.js';
import { resolveSymbols } from '../../../src/symbols/symbols.js';
import { missingColumns, parseTimestamp, splitDays, validateRows } from '../../../src/data/contract.js';
import { readCsv } from '../../../src/data/readers.js';

describe('flag spellings', () => {
  it('rewrites the underscore flags, also as --flag=value, and nothing after --', () => {
    expect(
      normalizeArgv([
        'node',
        'retrain',
        'run',
        '--dry_run',
        '--max_concurrent',
        '3',
        '--timeout_minutes=7',
        '--',
        '--dry_run',
      ]),
    ).toEqual([
      'node',
      'retrain',
      'run',
      '--dry-run',
      '--max-concurrent',
      '3',
      '--timeout-minutes=7',
      '--',
      '--dry_run',
    ]);
    expect(driverAlias('vastai')).toBe('vast');
    expect(driverAlias('VastAI')).toBe('vast');
    expect(driverAlias('ssh')).toBe('ssh');
  });

  it('--symbol is repeatable, not mixed with --symbols; --driver vastai is vast', () => {
    const req = parseRunOptions({ symbol: ['btcusdt', 'ETHUSDT'], driver: 'vastai', date: '20260110' });
    expect(req.plan.symbols).toEqual(['BTCUSDT', 'ETHUSDT']);
    expect(req.plan.driver).toBe('vast');
    expect(() => parseRunOptions({ symbol: ['BTCUSDT'], symbols: 'ETHUSDT' })).toThrow(
      'use --symbols or --symbol (repeatable), not both',
    );
    expect(parseRunOptions({ synthetic: true }).plan.synthetic).toBe(true);
    expect(parseRunOptions({}).plan.synthetic).toBe(false);
  });

  it('topN beyond the universe is an error, never a symbol', () => {
    expect(() => resolveSymbols('top100000')).toThrow(
      /--symbols top100000: the shipped universe has \d+ symbols/,
    );
    expect(() => resolveSymbols('TOP0')).toThrow(/the shipped universe has/);
  });
});

describe('the market data contract', () => {
  it('timestamps: ISO-8601 (zone or UTC), epoch seconds and milliseconds', () => {
    expect(parseTimestamp('2026-01-10T01:00:00Z')).toBe(1768006800);
    expect(parseTimestamp('2026-01-10 01:00:00')).toBe(1768006800);
    expect(parseTimestamp('2026-01-10T02:00:00+01:00')).toBe(1768006800);
    expect(parseTimestamp('1768006800')).toBe(1768006800);
    expect(parseTimestamp(1768006800000)).toBe(1768006800);
    expect(parseTimestamp(1768006800000n)).toBe(1768006800);
    expect(parseTimestamp('1768006800.5')).toMatch(/not whole/);
    expect(parseTimestamp('')).toBe('is empty');
  });

  it('columns: timestamp or ts, any case', () => {
    expect(missingColumns(['TS', 'Open', 'high', 'low', 'close', 'volume'])).toEqual([]);
    expect(missingColumns(['timestamp', 'open'])).toEqual(['high', 'low', 'close', 'volume']);
  });

  it('quoted CSV cells and a BOM are read', () => {
    const t = readCsv(
      '\uFEFFtimestamp,open,high,low,close,volume,note\n"2026-01-10T00:00:00Z",1,2,0.5,1,3,"a, b"\n',
    );
    expect(t.columns).toContain('timestamp');
    expect(t.rows[0]!.cells.note).toBe('a, b');
    expect(validateRows(t.rows).problems).toEqual([]);
  });

  it('days split on UTC midnight; short days are problems', () => {
    const rows = [0, 1, 2].map((h) => ({
      row: h + 2,
      cells: {
        timestamp: `2026-01-${h < 2 ? '09T2' + (2 + h) : '10T00'}:00:00Z`,
        open: 1,
        high: 1,
        low: 1,
        close: 1,
        volume: 0,
      },
    }));
    const { bars } = validateRows(rows);
    const { days, problems } = splitDays(bars, 2);
    expect([...days.keys()]).toEqual(['20260109', '20260110']);
    expect(problems).toEqual([
      { row: 4, column: 'timestamp', message: 'day 20260110 has 1 row, fewer than the minimum 2' },
    ]);
  });
});
