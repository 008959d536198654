import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../../src/errors.js';
import { parseRunDate, yesterdayUtc } from '../../../src/symbols/date.js';
import { resolveSymbols, universe, validateSymbol } from '../../../src/symbols/symbols.js';

describe('symbols', () => {
  it('topN takes the first N of the shipped ranked universe', () => {
    expect(resolveSymbols('top3')).toEqual(universe().slice(0, 3));
    expect(resolveSymbols('top20')).toHaveLength(20);
    expect(() => resolveSymbols('top0')).toThrow(InputError);
    expect(() => resolveSymbols(`top${universe().length + 1}`)).toThrow(/shipped universe has/);
  });
  it('comma lists are validated, upper-cased and de-duplicated in order', () => {
    expect(resolveSymbols('ethusdt, BTCUSDT,ETHUSDT')).toEqual(['ETHUSDT', 'BTCUSDT']);
  });
  it('a CSV file gives its first column, header optional', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sym-'));
    const f = join(dir, 'list.csv');
    writeFileSync(f, 'symbol,weight\nSOLUSDT,1\nBTCUSDT,2\n');
    expect(resolveSymbols(f)).toEqual(['SOLUSDT', 'BTCUSDT']);
    expect(() => resolveSymbols(join(dir, 'missing.csv'))).toThrow(/not found/);
  });
  it.each(['../../etc', 'BTC;rm -rf /', '$(id)', 'A', 'BTC USDT', 'x'.repeat(30)])('rejects %j', (bad) => {
    expect(() => validateSymbol(bad)).toThrow(InputError);
    expect(() => resolveSymbols(`BTCUSDT,${bad}`)).toThrow(/invalid symbol/);
  });
});

describe('dates', () => {
  it('accepts YYYYMMDD and YYYY-MM-DD of real calendar days', () => {
    expect(parseRunDate('20260115')).toBe('20260115');
    expect(parseRunDate('2024-02-29')).toBe('20240229');
  });
  it.each(['2026-13-45', '20230229', '2026011', 'yesterday', '20261301', '19990101'])('rejects %j', (bad) => {
    expect(() => parseRunDate(bad)).toThrow(/invalid date/);
  });
  it('defaults to yesterday in UTC', () => {
    expect(yesterdayUtc(new Date('2026-03-01T00:10:00Z'))).toBe('20260228');
  });
});
