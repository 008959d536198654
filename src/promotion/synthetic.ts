import { readMarketMeta } from '../data/market.js';
import type { ArtifactStore } from '../storage/store.js';

/**
 * Whether the candidate of (symbol, date) was trained on synthetic market data, as far as the store
 * tells: the date's market day says `source: synthetic`. The spec's `dataSource` (passed by the
 * promote job) covers features built from a window holding older synthetic days.
 */
export async function isSyntheticCandidate(
  store: ArtifactStore,
  symbol: string,
  date: string,
): Promise<boolean> {
  const meta = await readMarketMeta(store, symbol, date);
  return meta?.source === 'synthetic';
}
