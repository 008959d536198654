import { setTimeout as sleep } from 'node:timers/promises';
import { ChecksumError, ProductionReadError, StoreError } from '../errors.js';
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { sha256Hex } from '../util/hash.js';
import { manifestFileKeys, parseManifest, type ModelFile, type ProductionManifest } from './manifest.js';
import { parseMetricsText, type ParsedMetrics } from './metrics.js';

export interface ReadProductionOptions {
  /**
   * What to do with model.bin: `'bytes'` (default) reads it into memory; `{ toFile }` downloads it
   * there (written only once verified); `'skip'` leaves it (metrics and manifest only, e.g. to
   * compare with a candidate).
   */
  model?: 'bytes' | 'skip' | { toFile: string };
  /** Reads of the whole set before giving up (default 5). */
  attempts?: number;
  /** Pause before the 2nd read, doubled for each later one (default 50 ms). */
  retryDelayMs?: number;
}

/** One production model, read as a consistent whole: every file matches `manifest.sha256`. */
export interface ProductionSnapshot {
  symbol: string;
  manifest: ProductionManifest;
  /** The manifest.json bytes that were read. */
  manifestBytes: Buffer;
  /** The keys the files were read from (immutable copies, or the top level for older manifests). */
  keys: Record<ModelFile, string>;
  metricsBytes: Buffer;
  /** metrics.json parsed and validated (a production written by the guard is always valid). */
  metrics: ParsedMetrics;
  /** model.bin, when `model` was `'bytes'`. */
  model?: Buffer;
  /** Where model.bin was written, when `model` was `{ toFile }`. */
  modelPath?: string;
  /** How many reads it took (1 unless a publish was in flight). */
  attempts: number;
}

/**
 * Reads a symbol's production model safely: never a model with another model's metrics.
 *
 * The reader contract (docs/promotion.md, "How to read production safely"):
 * 1. read `manifest.json`: absent means no production (null), whatever other files lie there;
 * 2. read the files it names (`files`: immutable copies under `versions/<version>/`, which a
 *    publish never rewrites; older manifests: the top-level `model.bin`/`metrics.json`);
 * 3. check each file's SHA-256 against the manifest. A missing or different file means the read
 *    raced a publish (which replaced the manifest and pruned an old version, or, for an older
 *    manifest, is rewriting the top-level files): read the manifest again and start over, pausing
 *    `retryDelayMs`·2^(n-1), at most `attempts` times.
 * Throws ProductionReadError (not retryable) when the manifest is unreadable or the files still do not
 * match after the last attempt; StoreError for the store's own failures (network, permissions).
 */
export async function readProduction(
  store: ArtifactStore,
  symbol: string,
  opts: ReadProductionOptions = {},
): Promise<ProductionSnapshot | null> {
  const attempts = Math.max(1, opts.attempts ?? 5);
  const delay = Math.max(0, opts.retryDelayMs ?? 50);
  const model = opts.model ?? 'bytes';
  const manifestKey = keys.production(symbol, 'manifest.json');
  let problem = '';

  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (attempt > 1 && delay > 0) await sleep(delay * 2 ** (attempt - 2));

    const manifestBytes = await getOrNull(store, manifestKey);
    if (manifestBytes === null) return null;
    const parsed = parseManifest(symbol, manifestBytes);
    if (!parsed.ok) {
      throw new ProductionReadError(`production of ${symbol}: ${parsed.reason} (${manifestKey})`);
    }
    const manifest = parsed.manifest;
    const fileKeys = manifestFileKeys(symbol, manifest);

    const metricsBytes = await getChecked(store, fileKeys['metrics.json']);
    problem = mismatch('metrics.json', fileKeys['metrics.json'], metricsBytes, manifest);
    if (problem) continue;

    const snapshot: ProductionSnapshot = {
      symbol,
      manifest,
      manifestBytes,
      keys: fileKeys,
      metricsBytes: metricsBytes as Buffer,
      metrics: parseMetricsText((metricsBytes as Buffer).toString('utf8')),
      attempts: attempt,
    };
    if (model === 'bytes') {
      const bytes = await getChecked(store, fileKeys['model.bin']);
      problem = mismatch('model.bin', fileKeys['model.bin'], bytes, manifest);
      if (problem) continue;
      snapshot.model = bytes as Buffer;
    } else if (model !== 'skip') {
      try {
        await store.getFile(fileKeys['model.bin'], model.toFile, manifest.sha256['model.bin']);
      } catch (err) {
        if (!(err instanceof ChecksumError) && !isNotFound(err)) throw err;
        problem = `model.bin (${fileKeys['model.bin']}): ${(err as Error).message}`;
        continue;
      }
      snapshot.modelPath = model.toFile;
    }
    return snapshot;
  }
  throw new ProductionReadError(
    `production of ${symbol} could not be read consistently after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${problem}`,
  );
}

/** '' when the bytes are there and hash as the manifest says, else what is wrong. */
function mismatch(name: ModelFile, key: string, bytes: Buffer | Error | null, m: ProductionManifest): string {
  if (bytes === null) return `${name} is missing (${key})`;
  if (bytes instanceof Error) return `${name} (${key}): ${bytes.message}`;
  const got = sha256Hex(bytes);
  return got === m.sha256[name]
    ? ''
    : `${name} (${key}) has sha256 ${got}, the manifest says ${m.sha256[name]}`;
}

/** The object's bytes, or null when it is missing. */
async function getOrNull(store: ArtifactStore, key: string): Promise<Buffer | null> {
  try {
    return await store.getBytes(key);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/** Like getOrNull, but a corruption the store itself detected (ChecksumError) is returned. */
async function getChecked(store: ArtifactStore, key: string): Promise<Buffer | ChecksumError | null> {
  try {
    return await getOrNull(store, key);
  } catch (err) {
    if (err instanceof ChecksumError) return err;
    throw err;
  }
}

/** Both stores report a missing key as a non-retryable StoreError starting "not found:". */
function isNotFound(err: unknown): boolean {
  return err instanceof StoreError && !err.retryable && /^not found:/.test(err.message);
}
