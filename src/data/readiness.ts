/**
 * Data readiness: is there a features file for (featureset, symbol, date) in the store, and — with
 * `--ensure-features` — build it from the stored raw bars (synthetic ones when none were provided).
 */
import { InputError } from '../errors.js';
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { sha256Hex } from '../util/hash.js';
import { buildFeaturesV1, featuresToCsv } from './features.js';
import { generateOhlcv, ohlcvToCsv, parseOhlcvCsv, type OhlcvBar } from './synthetic.js';

export type Readiness =
  { ready: true; key: string; sha256: string; bytes: number } | { ready: false; key: string; reason: string };

export interface EnsuredFeatures {
  key: string;
  sha256: string;
  bytes: number;
  /** True when this call built and stored the file. */
  built: boolean;
}

/** The feature sets this package can build. */
export const KNOWN_FEATURESETS = ['v1'] as const;

/** Ready when the features file exists; then its SHA-256 and size (features files are small). */
export async function checkReadiness(
  store: ArtifactStore,
  featureset: string,
  symbol: string,
  date: string,
): Promise<Readiness> {
  const key = keys.features(featureset, symbol, date);
  if (!(await store.exists(key))) return { ready: false, key, reason: `no features at ${store.locate(key)}` };
  const data = await store.getBytes(key);
  return { ready: true, key, sha256: sha256Hex(data), bytes: data.length };
}

/**
 * Returns the features file, building it when absent: raw bars come from `market/<SYMBOL>/<date>/`,
 * generated (synthetic, deterministic) and stored there first when absent too. Existing features are
 * returned whatever the featureset; building is only possible for `v1` (InputError otherwise).
 */
export async function ensureFeatures(
  store: ArtifactStore,
  featureset: string,
  symbol: string,
  date: string,
): Promise<EnsuredFeatures> {
  const existing = await checkReadiness(store, featureset, symbol, date);
  if (existing.ready)
    return { key: existing.key, sha256: existing.sha256, bytes: existing.bytes, built: false };
  if (featureset !== 'v1') {
    throw new InputError(
      `unknown featureset ${JSON.stringify(featureset)}: can build ${KNOWN_FEATURESETS.join(', ')}`,
    );
  }
  const marketKey = keys.market(symbol, date);
  let bars: OhlcvBar[];
  if (await store.exists(marketKey)) {
    const text = (await store.getBytes(marketKey)).toString('utf8');
    try {
      bars = parseOhlcvCsv(text);
    } catch (err) {
      throw new InputError(`${store.locate(marketKey)}: ${(err as Error).message}`, { cause: err });
    }
  } else {
    bars = generateOhlcv(symbol, date);
    await store.putBytes(marketKey, ohlcvToCsv(bars));
  }
  const put = await store.putBytes(existing.key, featuresToCsv(buildFeaturesV1(bars)));
  return { key: put.key, sha256: put.sha256, bytes: put.bytes, built: true };
}
