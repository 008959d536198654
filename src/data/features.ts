/**
 * FeatureBuilderV1: bars → the features table that the recipes train on (featureset `v1`).
 *
 * Columns: `ts, close, <FEATURES_V1...>, fwd_ret_1`. Row t uses only bars 0..t (no look-ahead);
 * `fwd_ret_1` = ln(close[t+1] / close[t]) is the label source, so the last bar gives no row. Rows
 * before the longest window is full (the first 168 bars) are dropped. See FEATURES.md.
 *
 * Features, with r[t] = ln(close[t] / close[t-1]):
 * - `ret_1`, `ret_4`, `ret_24`: ln(close[t] / close[t-k]) for k = 1, 4, 24.
 * - `vol_24`: population standard deviation of r over the last 24 bars.
 * - `rsi_14`: 100 − 100 / (1 + G/L), G and L the mean gain and mean loss of the last 14 close
 *   changes (simple averages); 100 when L = 0 < G, 50 when both are 0.
 * - `ma_ratio_24`, `ma_ratio_168`: close / SMA(close, k) − 1.
 * - `volume_z_24`: (volume − mean) / std over the last 24 volumes (population std; 0 when std = 0).
 * - `hl_range`: (high − low) / close of the bar.
 * - `ret_1_z`: ret_1 / vol_24, the last return in units of recent volatility (0 when vol_24 = 0).
 * - `vol_ratio_24_168`: vol_24 / vol_168 − 1, the volatility regime (0 when vol_168 = 0).
 */
import { InputError } from '../errors.js';
import type { OhlcvBar } from './synthetic.js';

export const FEATURES_V1 = [
  'ret_1',
  'ret_4',
  'ret_24',
  'vol_24',
  'rsi_14',
  'ma_ratio_24',
  'ma_ratio_168',
  'volume_z_24',
  'hl_range',
  'ret_1_z',
  'vol_ratio_24_168',
] as const;

export const FEATURES_V1_HEADER: readonly string[] = ['ts', 'close', ...FEATURES_V1, 'fwd_ret_1'];

/** Bars needed before the first row: the longest window (168 closes, 168 returns). */
export const WARMUP_BARS = 168;

export interface FeatureTable {
  header: string[];
  rows: number[][];
}

function mean(xs: readonly number[], from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i++) s += xs[i]!;
  return s / (to - from);
}

function std(xs: readonly number[], from: number, to: number): number {
  const m = mean(xs, from, to);
  let s = 0;
  for (let i = from; i < to; i++) s += (xs[i]! - m) ** 2;
  return Math.sqrt(s / (to - from));
}

function rsi(close: readonly number[], t: number, n: number): number {
  let gain = 0;
  let loss = 0;
  for (let i = t - n + 1; i <= t; i++) {
    const d = close[i]! - close[i - 1]!;
    if (d > 0) gain += d;
    else loss -= d;
  }
  if (loss === 0) return gain === 0 ? 50 : 100;
  return 100 - 100 / (1 + gain / loss);
}

/** Builds the v1 feature table; throws InputError on bars that cannot give finite features. */
export function buildFeaturesV1(bars: readonly OhlcvBar[]): FeatureTable {
  for (let i = 0; i < bars.length; i++) {
    const b = bars[i]!;
    if (!(b.close > 0) || !(b.high > 0) || !(b.low > 0) || !Number.isFinite(b.volume)) {
      throw new InputError(`bar ${i} (ts ${b.ts}): prices must be positive and finite`);
    }
    if (i > 0 && b.ts <= bars[i - 1]!.ts)
      throw new InputError(`bar ${i} (ts ${b.ts}): timestamps not increasing`);
  }
  const close = bars.map((b) => b.close);
  const volume = bars.map((b) => b.volume);
  const r = close.map((c, i) => (i === 0 ? 0 : Math.log(c / close[i - 1]!)));

  const rows: number[][] = [];
  for (let t = WARMUP_BARS; t < bars.length - 1; t++) {
    const c = close[t]!;
    const vol24 = std(r, t - 23, t + 1);
    const vol168 = std(r, t - 167, t + 1);
    const volStd = std(volume, t - 23, t + 1);
    const row = [
      bars[t]!.ts,
      c,
      r[t]!,
      Math.log(c / close[t - 4]!),
      Math.log(c / close[t - 24]!),
      vol24,
      rsi(close, t, 14),
      c / mean(close, t - 23, t + 1) - 1,
      c / mean(close, t - 167, t + 1) - 1,
      volStd === 0 ? 0 : (volume[t]! - mean(volume, t - 23, t + 1)) / volStd,
      (bars[t]!.high - bars[t]!.low) / c,
      vol24 === 0 ? 0 : r[t]! / vol24,
      vol168 === 0 ? 0 : vol24 / vol168 - 1,
      Math.log(close[t + 1]! / c),
    ];
    if (!row.every(Number.isFinite))
      throw new InputError(`non-finite feature at bar ${t} (ts ${bars[t]!.ts})`);
    rows.push(row);
  }
  return { header: [...FEATURES_V1_HEADER], rows };
}

/** CSV of a feature table: `ts` as an integer, every other column with 8 decimals. */
export function featuresToCsv(table: FeatureTable): string {
  const lines = [table.header.join(',')];
  for (const row of table.rows) {
    lines.push(row.map((v, i) => (i === 0 ? String(v) : v.toFixed(8))).join(','));
  }
  return lines.join('\n') + '\n';
}
