import { describe, expect, it, vi } from 'vitest';
import { generateOhlcv, ohlcvToCsv, parseOhlcvCsv } from '../../../src/data/synthetic.js';
import { InputError } from '../../../src/errors.js';
import { sha256Hex } from '../../../src/util/hash.js';

describe('generateOhlcv', () => {
  it('gives byte-identical CSV for the same inputs', () => {
    const a = ohlcvToCsv(generateOhlcv('BTCUSDT', '20260115'));
    const b = ohlcvToCsv(generateOhlcv('BTCUSDT', '20260115'));
    expect(a).toBe(b);
    expect(a.split('\n')[0]).toBe('ts,open,high,low,close,volume');
  });

  it('matches the pinned bytes (same on every machine; update only on purpose)', () => {
    // A change here changes every synthetic dataset, hence every features sha256 in JobSpecs.
    expect(sha256Hex(ohlcvToCsv(generateOhlcv('BTCUSDT', '20260115', { lookbackDays: 3 })))).toBe(
      'b805666ccf0303a6d06f9a425ed7a1634c6c4ebfd983bde752e4165edec403a4',
    );
  });

  it('gives different series for different symbols', () => {
    const a = generateOhlcv('BTCUSDT', '20260115');
    const b = generateOhlcv('ETHUSDT', '20260115');
    expect(a[0]!.ts).toBe(b[0]!.ts);
    expect(ohlcvToCsv(a)).not.toBe(ohlcvToCsv(b));
    expect(a[0]!.close).not.toBe(b[0]!.close);
  });

  it('covers lookbackDays days of bars ending at the end of the date (UTC)', () => {
    const bars = generateOhlcv('SOLUSDT', '20260115', { lookbackDays: 3, barMinutes: 15 });
    expect(bars).toHaveLength(3 * 96);
    expect(bars[0]!.ts).toBe(Date.UTC(2026, 0, 13) / 1000);
    expect(bars.at(-1)!.ts).toBe(Date.UTC(2026, 0, 16) / 1000 - 15 * 60);
    expect(generateOhlcv('SOLUSDT', '20260115')).toHaveLength(120 * 24);
  });

  it('gives the same bar at a timestamp whichever date is requested', () => {
    const early = generateOhlcv('XRPUSDT', '20260110', { lookbackDays: 30 });
    const late = generateOhlcv('XRPUSDT', '20260131', { lookbackDays: 40 });
    const byTs = new Map(late.map((b) => [b.ts, b]));
    const common = early.filter((b) => byTs.has(b.ts));
    expect(common).toHaveLength(19 * 24); // 2025-12-23 .. 2026-01-10
    for (const bar of common) expect(byTs.get(bar.ts)).toEqual(bar);
  });

  it('does not depend on what was generated before in the process (cache order)', async () => {
    vi.resetModules();
    const fresh = await import('../../../src/data/synthetic.js');
    const late = fresh.ohlcvToCsv(fresh.generateOhlcv('LTCUSDT', '20260301', { lookbackDays: 2 }));
    const early = fresh.ohlcvToCsv(fresh.generateOhlcv('LTCUSDT', '20200101', { lookbackDays: 2 }));
    expect(ohlcvToCsv(generateOhlcv('LTCUSDT', '20200101', { lookbackDays: 2 }))).toBe(early);
    expect(ohlcvToCsv(generateOhlcv('LTCUSDT', '20260301', { lookbackDays: 2 }))).toBe(late);
  });

  it('is continuous: each bar opens at the previous close, high/low bracket open/close', () => {
    const bars = generateOhlcv('DOGEUSDT', '20251201', { lookbackDays: 10 });
    for (let i = 1; i < bars.length; i++) expect(bars[i]!.open).toBe(bars[i - 1]!.close);
    for (const b of bars) {
      expect(b.high).toBeGreaterThanOrEqual(Math.max(b.open, b.close));
      expect(b.low).toBeLessThanOrEqual(Math.min(b.open, b.close));
      expect(b.low).toBeGreaterThan(0);
      expect(b.volume).toBeGreaterThan(0);
    }
  });

  it('round-trips through CSV exactly', () => {
    const bars = generateOhlcv('ADAUSDT', '20260115', { lookbackDays: 5 });
    expect(parseOhlcvCsv(ohlcvToCsv(bars))).toEqual(bars);
  });

  it('rejects bad dates and options with InputError', () => {
    expect(() => generateOhlcv('BTCUSDT', '2026-01-15')).toThrow(InputError);
    expect(() => generateOhlcv('BTCUSDT', '20260230')).toThrow(/invalid date/);
    expect(() => generateOhlcv('BTCUSDT', '20260115', { barMinutes: 7 })).toThrow(/barMinutes/);
    expect(() => generateOhlcv('BTCUSDT', '20260115', { lookbackDays: 0 })).toThrow(/lookbackDays/);
  });
});

describe('parseOhlcvCsv', () => {
  const header = 'ts,open,high,low,close,volume\n';
  it('names the offending line', () => {
    expect(() => parseOhlcvCsv('ts,open\n')).toThrow(/line 1: expected header/);
    expect(() => parseOhlcvCsv(header + '1,1,1,1,1,1\n2,1,1,1\n')).toThrow(/line 3: expected 6 fields/);
    expect(() => parseOhlcvCsv(header + '1,1,1,1,abc,1\n')).toThrow(/line 2: non-numeric/);
    expect(() => parseOhlcvCsv(header + '5,1,1,1,1,1\n5,1,1,1,1,1\n')).toThrow(/line 3: ts 5 is not after/);
    expect(() => parseOhlcvCsv(header + '1,1,1,1,0,1\n')).toThrow(/line 2: prices must be > 0/);
    expect(() => parseOhlcvCsv(header)).toThrow(/no bars/);
    const err = (() => {
      try {
        parseOhlcvCsv(header + '1,1,1,1,NaN,1\n');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).not.toContain('\n');
  });
});
