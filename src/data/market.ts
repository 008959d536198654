/**
 * Stored market data: one object per (symbol, UTC day), `market/<SYMBOL>/<YYYYMMDD>/ohlcv.csv`, with
 * its `meta.json` (source, rows, first/last bar, SHA-256). Reading a day checks it against its meta
 * and the contract again, so a file edited or damaged in the store is `bad_data`, not a training.
 */
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { sha256Hex } from '../util/hash.js';
import { iso, utcDay, validateRows, type ParsedBar } from './contract.js';
import { readCsv } from './readers.js';
import { ohlcvToCsv, type OhlcvBar } from './synthetic.js';

export type DataSource = 'import' | 'synthetic';

export interface MarketDayMeta {
  symbol: string;
  date: string;
  source: DataSource;
  /** The imported file's name (import only). */
  file?: string;
  rows: number;
  first: string;
  last: string;
  sha256: string;
  storedAt: string;
}

export type DayRead =
  | { ok: true; bars: OhlcvBar[]; meta: MarketDayMeta | null }
  | { ok: false; reason: 'no_data' | 'bad_data'; detail: string };

/** Stores one day's bars and its meta (bars first: a meta always describes a whole file). */
export async function storeMarketDay(
  store: ArtifactStore,
  symbol: string,
  date: string,
  bars: readonly OhlcvBar[],
  info: { source: DataSource; file?: string; now?: Date },
): Promise<MarketDayMeta> {
  const put = await store.putBytes(keys.market(symbol, date), ohlcvToCsv(bars));
  const meta: MarketDayMeta = {
    symbol,
    date,
    source: info.source,
    ...(info.file !== undefined ? { file: info.file } : {}),
    rows: bars.length,
    first: iso(bars[0]!.ts),
    last: iso(bars[bars.length - 1]!.ts),
    sha256: put.sha256,
    storedAt: (info.now ?? new Date()).toISOString(),
  };
  await store.putJson(keys.marketMeta(symbol, date), meta);
  return meta;
}

/** A day's meta, or null when there is none (data stored before metas existed) or it is unreadable. */
export async function readMarketMeta(
  store: ArtifactStore,
  symbol: string,
  date: string,
): Promise<MarketDayMeta | null> {
  const key = keys.marketMeta(symbol, date);
  if (!(await store.exists(key))) return null;
  return store.getJson<MarketDayMeta>(key).catch(() => null);
}

/** Reads and re-validates one stored day. */
export async function readMarketDay(store: ArtifactStore, symbol: string, date: string): Promise<DayRead> {
  const key = keys.market(symbol, date);
  if (!(await store.exists(key)))
    return {
      ok: false,
      reason: 'no_data',
      detail: `no market data for ${symbol} on ${date} (${store.locate(key)})`,
    };
  const bytes = await store.getBytes(key);
  const meta = await readMarketMeta(store, symbol, date);
  if (meta && meta.sha256 !== sha256Hex(bytes)) {
    return {
      ok: false,
      reason: 'bad_data',
      detail: `${store.locate(key)} has sha256 ${sha256Hex(bytes)}, its meta.json says ${meta.sha256}`,
    };
  }
  const table = readCsv(bytes.toString('utf8'));
  const { bars, problems } = validateRows(table.rows);
  const wrongDay = bars.find((b) => utcDay(b.ts) !== date);
  if (problems.length > 0 || bars.length === 0 || wrongDay) {
    const p = problems[0];
    const detail = p
      ? `row ${p.row}, column ${p.column}: ${p.message}`
      : wrongDay
        ? `row ${wrongDay.row}: bar ${iso(wrongDay.ts)} is not on ${date}`
        : 'no bars';
    return { ok: false, reason: 'bad_data', detail: `${store.locate(key)}: ${detail}` };
  }
  return { ok: true, bars: bars.map(stripRow), meta };
}

function stripRow(b: ParsedBar): OhlcvBar {
  return { ts: b.ts, open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume };
}

/** YYYYMMDD `n` days before `date`. */
export function daysBefore(date: string, n: number): string {
  const ms = Date.UTC(+date.slice(0, 4), +date.slice(4, 6) - 1, +date.slice(6, 8)) - n * 86_400_000;
  return new Date(ms).toISOString().slice(0, 10).replace(/-/g, '');
}

/** The days a symbol has in the store, sorted. */
export async function storedDays(store: ArtifactStore, symbol: string): Promise<string[]> {
  const prefix = keys.marketPrefix(symbol);
  const days = new Set<string>();
  for (const key of await store.list(prefix)) {
    const [day, name] = key.slice(prefix.length).split('/');
    if (day && /^\d{8}$/.test(day) && name === 'ohlcv.csv') days.add(day);
  }
  return [...days].sort();
}

/** Symbols that have market data, sorted. */
export async function storedSymbols(store: ArtifactStore): Promise<string[]> {
  const prefix = keys.marketPrefix();
  const out = new Set<string>();
  for (const key of await store.list(prefix)) {
    const sym = key.slice(prefix.length).split('/')[0];
    if (sym) out.add(sym);
  }
  return [...out].sort();
}
