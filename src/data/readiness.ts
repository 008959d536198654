/**
 * Data readiness: is there a features file for (featureset, symbol, date) in the store, and — with
 * `--ensure-features` — build it from the stored market days (prepare.ts; synthetic bars only with
 * `--synthetic`).
 */
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { sha256Hex } from '../util/hash.js';

export type Readiness =
  { ready: true; key: string; sha256: string; bytes: number } | { ready: false; key: string; reason: string };

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
