import type { ArtifactStore } from '../storage/store.js';
import { readMarketMeta, storedDays, storedSymbols } from './market.js';

/** One stored market day, as `retrain data ls` shows it. */
export interface CoverageRow {
  symbol: string;
  date: string;
  /** `unknown` for a day stored without meta.json (by hand, or by an older retrain). */
  source: string;
  rows: number | null;
  first: string | null;
  last: string | null;
  file?: string;
}

/** The stored days of the symbols (all when none given), within [from, to] (YYYYMMDD, inclusive). */
export async function marketCoverage(
  store: ArtifactStore,
  opts: { symbols?: string[]; from?: string; to?: string },
): Promise<CoverageRow[]> {
  const symbols = opts.symbols?.length ? opts.symbols : await storedSymbols(store);
  const out: CoverageRow[] = [];
  for (const symbol of symbols) {
    for (const date of await storedDays(store, symbol)) {
      if ((opts.from && date < opts.from) || (opts.to && date > opts.to)) continue;
      const meta = await readMarketMeta(store, symbol, date);
      out.push({
        symbol,
        date,
        source: meta?.source ?? 'unknown',
        rows: meta?.rows ?? null,
        first: meta?.first ?? null,
        last: meta?.last ?? null,
        ...(meta?.file ? { file: meta.file } : {}),
      });
    }
  }
  return out;
}
