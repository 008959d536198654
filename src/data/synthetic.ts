/**
 * Deterministic synthetic OHLCV, used when no real market data was provided for a symbol and day.
 *
 * Same (symbol, date, opts) → the same bars, bit for bit, on every machine: no Math.random, no clock,
 * only a seeded PRNG (mulberry32) and IEEE arithmetic. The series is built in two layers so that a bar
 * at a given timestamp is the same whichever `date` is requested:
 *
 * - a daily layer iterated from a fixed epoch (1990-01-01): the log price at each day's start follows
 *   a slowly mean-reverting random walk around a per-symbol base price, with a persistent daily
 *   volatility regime (AR(1) log-vol), each day's shocks drawn from a PRNG seeded by (symbol, day);
 * - an intraday layer per (symbol, day, barMinutes): bar log returns follow an AR(1) process with a
 *   per-symbol coefficient (mild momentum or mean reversion, the learnable part) and clustered
 *   volatility, then shifted by a constant so the day ends exactly at the next day's start price.
 *
 * Prices are rounded to 8 decimals and volumes to 3 in the generator itself, so a CSV round trip gives
 * back identical bars.
 */
import { InputError } from '../errors.js';
import { mulberry32 } from '../util/random.js';

export interface OhlcvBar {
  /** Bar open time, epoch seconds (UTC). */
  ts: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

export interface OhlcvOptions {
  /** Days covered, ending with `date` (included). Default 120. */
  lookbackDays?: number;
  /** Bar length in minutes; must divide 1440. Default 60. */
  barMinutes?: number;
}

export const OHLCV_HEADER = 'ts,open,high,low,close,volume';

const EPOCH_MS = Date.UTC(1990, 0, 1);
const DAY_MS = 86_400_000;

/** FNV-1a over the UTF-16 code units, finished with murmur3's fmix32. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Standard normal draws (Box–Muller, one value per pair of uniforms). */
function gaussian(rand: () => number): () => number {
  return () => {
    const u1 = 1 - rand(); // (0, 1]
    const u2 = rand();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  };
}

const uniformFor = (symbol: string, what: string) => hash32(`${symbol}|param|${what}`) / 4294967296;

interface SymbolParams {
  logBase: number;
  dailyVol: number;
  /** AR(1) coefficient of bar returns: > 0 momentum, < 0 mean reversion. */
  phi: number;
  baseVolume: number;
}

function paramsFor(symbol: string): SymbolParams {
  const sign = uniformFor(symbol, 'phi-sign') < 0.5 ? -1 : 1;
  return {
    logBase: Math.log(10) * 4.5 * uniformFor(symbol, 'price'), // 1 … ~31 600
    dailyVol: 0.02 + 0.03 * uniformFor(symbol, 'vol'), // 2 % … 5 % a day
    phi: sign * (0.12 + 0.1 * uniformFor(symbol, 'phi')),
    baseVolume: 10 ** (3 + 3 * uniformFor(symbol, 'volume')), // per hour
  };
}

/** Daily layer, cached per symbol: log price and log-vol regime at the start of each day since epoch. */
interface DailyPath {
  params: SymbolParams;
  logP: number[];
  logVol: number[];
}

const dailyCache = new Map<string, DailyPath>();

function dailyPath(symbol: string, uptoDay: number): DailyPath {
  let path = dailyCache.get(symbol);
  if (!path) {
    const params = paramsFor(symbol);
    path = { params, logP: [params.logBase], logVol: [0] };
    dailyCache.set(symbol, path);
  }
  const { params, logP, logVol } = path;
  for (let k = logP.length - 1; k < uptoDay; k++) {
    const g = gaussian(mulberry32(hash32(`${symbol}|day|${k}`)));
    const lv = logVol[k]!;
    const sigma = params.dailyVol * Math.exp(lv);
    logVol.push(0.9 * lv + 0.15 * g());
    logP.push(logP[k]! + 0.003 * (params.logBase - logP[k]!) + sigma * g());
  }
  return path;
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));

/** The bars of one day (day index since epoch); depends only on (symbol, day, barMinutes). */
function dayBars(symbol: string, day: number, barMinutes: number): OhlcvBar[] {
  const { params, logP, logVol } = dailyPath(symbol, day + 1);
  const n = 1440 / barMinutes;
  const start = logP[day]!;
  const end = logP[day + 1]!;
  const sigmaBar = (params.dailyVol * Math.exp(logVol[day]!)) / Math.sqrt(n);
  const g = gaussian(mulberry32(hash32(`${symbol}|bars|${day}|${barMinutes}`)));

  const returns: number[] = [];
  const scales: number[] = [];
  let h = 0;
  let prev = 0;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    h = 0.8 * h + 0.25 * g(); // clustered volatility within the day
    const s = sigmaBar * Math.exp(h);
    const r = params.phi * prev + s * g();
    returns.push(r);
    scales.push(s);
    sum += r;
    prev = r;
  }
  const drift = (end - start - sum) / n; // bridge: the day ends at the next day's start price

  const bars: OhlcvBar[] = [];
  const t0 = (EPOCH_MS + day * DAY_MS) / 1000;
  let logOpen = start;
  let open = round(Math.exp(start), 8);
  for (let i = 0; i < n; i++) {
    const r = returns[i]! + drift;
    const logClose = i === n - 1 ? end : logOpen + r;
    const close = round(Math.exp(logClose), 8);
    const s = scales[i]!;
    const high = round(Math.max(open, close) * Math.exp(0.6 * s * Math.abs(g())), 8);
    const low = round(Math.min(open, close) * Math.exp(-0.6 * s * Math.abs(g())), 8);
    const activity = 0.5 * logVol[day]! + 0.35 * g() + 0.6 * Math.min(Math.abs(r) / sigmaBar, 6);
    const volume = round(((params.baseVolume * barMinutes) / 60) * Math.exp(activity), 3);
    bars.push({ ts: t0 + i * barMinutes * 60, open, high, low, close, volume });
    logOpen = logClose;
    open = close;
  }
  return bars;
}

/** YYYYMMDD → day index since the epoch; InputError on anything else. */
function dayIndex(date: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(date);
  const ms = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : NaN;
  if (!m || new Date(ms).toISOString().slice(0, 10).replaceAll('-', '') !== date) {
    throw new InputError(`invalid date ${JSON.stringify(date)}: expected YYYYMMDD`);
  }
  return Math.round((ms - EPOCH_MS) / DAY_MS);
}

/**
 * Hourly (by default) bars for the `lookbackDays` days ending at the end of `date` (UTC), oldest first.
 * Deterministic; a bar at a given timestamp does not depend on the requested date.
 */
export function generateOhlcv(symbol: string, date: string, opts: OhlcvOptions = {}): OhlcvBar[] {
  const lookbackDays = opts.lookbackDays ?? 120;
  const barMinutes = opts.barMinutes ?? 60;
  if (!symbol) throw new InputError('generateOhlcv: empty symbol');
  if (!Number.isInteger(lookbackDays) || lookbackDays < 1 || lookbackDays > 3650) {
    throw new InputError(`lookbackDays must be an integer in 1..3650, got ${lookbackDays}`);
  }
  if (!Number.isInteger(barMinutes) || barMinutes < 1 || 1440 % barMinutes !== 0) {
    throw new InputError(`barMinutes must be an integer that divides 1440, got ${barMinutes}`);
  }
  const last = dayIndex(date);
  const first = last - lookbackDays + 1;
  if (first < 0)
    throw new InputError(`date ${date} with ${lookbackDays} lookback days starts before 1990-01-01`);
  const bars: OhlcvBar[] = [];
  for (let d = first; d <= last; d++) bars.push(...dayBars(symbol, d, barMinutes));
  return bars;
}

/** CSV with header `ts,open,high,low,close,volume`; prices with 8 decimals, volume with 3. */
export function ohlcvToCsv(bars: readonly OhlcvBar[]): string {
  const lines = [OHLCV_HEADER];
  for (const b of bars) {
    lines.push(
      `${b.ts},${b.open.toFixed(8)},${b.high.toFixed(8)},${b.low.toFixed(8)},${b.close.toFixed(8)},${b.volume.toFixed(3)}`,
    );
  }
  return lines.join('\n') + '\n';
}

/**
 * Parses OHLCV CSV (the header above, then one bar per line, timestamps strictly increasing, prices
 * positive, volume non-negative). Throws InputError naming the offending line.
 */
export function parseOhlcvCsv(text: string): OhlcvBar[] {
  const lines = text.split(/\r?\n/);
  if ((lines[0] ?? '').trim() !== OHLCV_HEADER) {
    throw new InputError(
      `OHLCV CSV line 1: expected header "${OHLCV_HEADER}", got ${JSON.stringify(lines[0])}`,
    );
  }
  const bars: OhlcvBar[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const where = `OHLCV CSV line ${i + 1}`;
    const cells = line.split(',');
    if (cells.length !== 6) throw new InputError(`${where}: expected 6 fields, got ${cells.length}`);
    const v = cells.map((c) => (c.trim() === '' ? NaN : Number(c)));
    const [ts, open, high, low, close, volume] = v as [number, number, number, number, number, number];
    if (v.some((x) => !Number.isFinite(x))) throw new InputError(`${where}: non-numeric or non-finite value`);
    if (!Number.isInteger(ts)) throw new InputError(`${where}: ts must be integer epoch seconds`);
    if (open <= 0 || high <= 0 || low <= 0 || close <= 0)
      throw new InputError(`${where}: prices must be > 0`);
    if (high < low) throw new InputError(`${where}: high < low`);
    if (volume < 0) throw new InputError(`${where}: volume must be >= 0`);
    const prev = bars[bars.length - 1];
    if (prev && ts <= prev.ts)
      throw new InputError(`${where}: ts ${ts} is not after the previous bar's ${prev.ts}`);
    bars.push({ ts, open, high, low, close, volume });
  }
  if (bars.length === 0) throw new InputError('OHLCV CSV: no bars');
  return bars;
}
