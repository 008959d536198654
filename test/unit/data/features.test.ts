import { describe, expect, it } from 'vitest';
import { FEATURES_V1, WARMUP_BARS, buildFeaturesV1, featuresToCsv } from '../../../src/data/features.js';
import { generateOhlcv, type OhlcvBar } from '../../../src/data/synthetic.js';
import { sha256Hex } from '../../../src/util/hash.js';

const bars = generateOhlcv('BTCUSDT', '20260115');

describe('buildFeaturesV1', () => {
  const table = buildFeaturesV1(bars);

  it('has ts, close, the documented features and fwd_ret_1', () => {
    expect(table.header).toEqual(['ts', 'close', ...FEATURES_V1, 'fwd_ret_1']);
    expect(FEATURES_V1).toEqual(
      expect.arrayContaining([
        'ret_1',
        'ret_4',
        'ret_24',
        'vol_24',
        'rsi_14',
        'ma_ratio_24',
        'ma_ratio_168',
        'volume_z_24',
        'hl_range',
      ]),
    );
  });

  it('drops the warm-up rows and the last bar, all values finite', () => {
    expect(table.rows).toHaveLength(bars.length - WARMUP_BARS - 1);
    expect(table.rows[0]![0]).toBe(bars[WARMUP_BARS]!.ts);
    for (const row of table.rows) {
      expect(row).toHaveLength(table.header.length);
      expect(row.every(Number.isFinite)).toBe(true);
    }
  });

  it('computes returns and the forward label from closes', () => {
    const col = (name: string) => table.header.indexOf(name);
    const t = 500;
    const row = table.rows[t - WARMUP_BARS]!;
    expect(row[col('close')]).toBe(bars[t]!.close);
    expect(row[col('ret_1')]).toBeCloseTo(Math.log(bars[t]!.close / bars[t - 1]!.close), 12);
    expect(row[col('ret_24')]).toBeCloseTo(Math.log(bars[t]!.close / bars[t - 24]!.close), 12);
    expect(row[col('fwd_ret_1')]).toBeCloseTo(Math.log(bars[t + 1]!.close / bars[t]!.close), 12);
    expect(row[col('rsi_14')]).toBeGreaterThanOrEqual(0);
    expect(row[col('rsi_14')]).toBeLessThanOrEqual(100);
    expect(row[col('hl_range')]).toBeGreaterThanOrEqual(0);
  });

  it('does not look ahead: a row only depends on bars up to its own', () => {
    const cut = 400;
    const partial = buildFeaturesV1(bars.slice(0, cut + 2));
    const full = table.rows[cut - WARMUP_BARS]!;
    expect(partial.rows.at(-1)).toEqual(full);
  });

  it('gives zero-safe features on a flat series', () => {
    const flat: OhlcvBar[] = Array.from({ length: 200 }, (_, i) => ({
      ts: i * 3600,
      open: 10,
      high: 10,
      low: 10,
      close: 10,
      volume: 5,
    }));
    const t = buildFeaturesV1(flat);
    expect(t.rows.length).toBe(200 - WARMUP_BARS - 1);
    for (const row of t.rows) expect(row.every(Number.isFinite)).toBe(true);
  });

  it('returns no rows for too short a history', () => {
    expect(buildFeaturesV1(bars.slice(0, WARMUP_BARS)).rows).toEqual([]);
  });

  it('rejects non-positive prices and unordered bars', () => {
    const bad = bars.slice(0, 200).map((b) => ({ ...b }));
    bad[10]!.close = 0;
    expect(() => buildFeaturesV1(bad)).toThrow(/bar 10/);
    const unordered = [bars[1]!, bars[0]!];
    expect(() => buildFeaturesV1(unordered)).toThrow(/not increasing/);
  });
});

describe('featuresToCsv', () => {
  it('is deterministic with stable formatting', () => {
    const a = featuresToCsv(buildFeaturesV1(generateOhlcv('ETHUSDT', '20260115')));
    const b = featuresToCsv(buildFeaturesV1(generateOhlcv('ETHUSDT', '20260115')));
    expect(a).toBe(b);
    const lines = a.trimEnd().split('\n');
    expect(lines[0]).toBe(['ts', 'close', ...FEATURES_V1, 'fwd_ret_1'].join(','));
    expect(lines[1]).toMatch(/^\d+(,-?\d+\.\d{8})+$/);
    expect(a).not.toMatch(/NaN|Infinity/);
  });

  it('matches the pinned bytes for BTCUSDT 20260115 (update only on purpose)', () => {
    expect(sha256Hex(featuresToCsv(buildFeaturesV1(bars)))).toBe(
      '732c9c59254a49de42fe1e48c86a9676fe0c5f9fbb410937207a8bc03bd06d34',
    );
  });
});
