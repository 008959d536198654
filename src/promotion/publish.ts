import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreError } from '../errors.js';
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { sha256File } from '../util/hash.js';
import {
  freeStamp,
  MODEL_FILES,
  readManifest,
  refOf,
  toStamp,
  type ManifestRef,
  type ProductionManifest,
} from './manifest.js';
import type { CandidateMetrics } from './metrics.js';
import { RULES_VERSION } from './rules.js';

export { readManifest, toStamp, type ProductionManifest } from './manifest.js';

/** The top-level files of a production model, in the order they are archived. */
export const PRODUCTION_FILES = ['model.bin', 'metrics.json', 'manifest.json'] as const;

export interface PublishInput {
  store: ArtifactStore;
  symbol: string;
  /** The model's run date (YYYYMMDD). */
  date: string;
  /** The model's training job. */
  jobId: string;
  rule: string;
  /** The decision time; also names the history and version folders (YYYYMMDDTHHMMSSZ). */
  decidedAt: Date;
  metrics: CandidateMetrics;
  /** The exact metrics.json bytes the decision was made on: these become production's. */
  metricsBytes: Buffer;
  /** Where model.bin comes from; default: the candidate of `date`. */
  modelKey?: string;
  /** model.bin must hash to this (a rollback checks the history entry against its manifest). */
  modelSha256?: string;
  /**
   * Production is a legacy model (no manifest) in this folder (`models/production/<dir>/`, maybe
   * another letter case): it is what gets archived to history. Its files are left where they are.
   */
  legacyPrefix?: string;
  /** Set by a rollback: the history entry restored and when that model was first promoted. */
  rollback?: { restoredFrom: string; originallyPromotedAt?: string };
  /**
   * The production lock's signal (ProductionLock.hold): once aborted the lock may be another's, so
   * the manifest is not replaced and no version folder is pruned.
   */
  signal?: AbortSignal;
}

export interface PublishOutput {
  manifest: ProductionManifest;
  /** The history stamp the previous production went to, or null when there was none. */
  historyStamp: string | null;
}

/** How many version folders a publish keeps: the new one and the one it replaced. */
const KEPT_VERSIONS = 2;

/**
 * Replaces a symbol's production model. The only writer of `models/production/`, so production
 * changes all at once for readers that follow the manifest (readProduction):
 * 1. archive the current production (the files its manifest names, else whatever top-level files
 *    exist, plus manifest.json) to `history/<stamp>/` with verified copies;
 * 2. write the new model.bin and metrics.json under a fresh, never-rewritten
 *    `versions/<version>/` folder (model.bin hashed and verified, `modelSha256` checked);
 * 3. write the top-level `model.bin` and `metrics.json` (the documented keys; between this step and
 *    the next they do not match the manifest, which readers detect by hash);
 * 4. replace manifest.json (one atomic put: the pointer flips from the old version to the new one);
 * 5. delete version folders other than the new one and the one just replaced (a reader still holding
 *    the old manifest finds its files; an older one re-reads the manifest). Best effort.
 * The old manifest stays in place until step 4, so an interruption leaves the previous production
 * readable and whole; re-running the publish completes it. Not a lock: callers hold the symbol's
 * ProductionLock (lock.ts) around the read of production and the publish, and pass its signal.
 */
export async function publishProduction(input: PublishInput): Promise<PublishOutput> {
  const { store, symbol, date, jobId } = input;
  const prod = (name: string) => keys.production(symbol, name);
  const prefix = keys.productionPrefix(symbol);
  const stamp = toStamp(input.decidedAt);

  const previous = await readManifest(store, symbol);
  const historyStamp = await archive(store, symbol, previous, stamp, input.legacyPrefix);
  const history = historyStamp === null ? null : `${prefix}history/${historyStamp}/`;

  const version = await freeStamp(store, `${prefix}versions/`, stamp);
  const files = {
    'model.bin': `${prefix}versions/${version}/model.bin`,
    'metrics.json': `${prefix}versions/${version}/metrics.json`,
  };
  const dir = await mkdtemp(join(tmpdir(), 'retrain-publish-'));
  let modelSha: string;
  try {
    const local = join(dir, 'model.bin');
    const source = input.modelKey ?? keys.candidate(symbol, date, 'model.bin');
    await store.getFile(source, local, input.modelSha256);
    modelSha = (await sha256File(local)).sha256;
    await store.putFile(files['model.bin'], local, modelSha);
    await store.putBytes(files['metrics.json'], input.metricsBytes);
    await store.putFile(prod('model.bin'), local, modelSha);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const metricsSha = (await store.putBytes(prod('metrics.json'), input.metricsBytes)).sha256;

  const replaced: ManifestRef | null = previous ? refOf(previous) : null;
  const manifest: ProductionManifest = {
    symbol,
    jobId,
    date,
    promotedAt: input.decidedAt.toISOString(),
    rule: input.rule,
    rulesVersion: RULES_VERSION,
    metrics: input.metrics,
    sha256: { 'model.bin': modelSha, 'metrics.json': metricsSha },
    version,
    files,
    replaced,
    history,
    ...(input.rollback
      ? {
          rolledBackFrom: replaced ? { ...replaced, history } : null,
          restoredFrom: input.rollback.restoredFrom,
          ...(input.rollback.originallyPromotedAt
            ? { originallyPromotedAt: input.rollback.originallyPromotedAt }
            : {}),
        }
      : {}),
  };
  lockKept(input.signal, symbol);
  await store.putJson(prod('manifest.json'), manifest);

  if (!input.signal?.aborted) {
    await pruneVersions(store, symbol, [version, previous?.version]).catch(() => undefined);
  }
  return { manifest, historyStamp };
}

/** Throws (retryable) when the production lock was lost: nothing may be committed any more. */
function lockKept(signal: AbortSignal | undefined, symbol: string): void {
  if (signal?.aborted) {
    throw new StoreError(
      `lost the production lock of ${symbol} before replacing its manifest; nothing was published`,
      {
        cause: (signal as AbortSignal & { error?: unknown }).error,
      },
    );
  }
}

/**
 * Copies the current production to `history/<stamp>/` and returns the stamp (null when there is
 * nothing to archive). The model is taken from the files the manifest names when they exist (they
 * are what readers were given), else from the top-level keys (older manifests, no manifest).
 */
async function archive(
  store: ArtifactStore,
  symbol: string,
  previous: ProductionManifest | null,
  stamp: string,
  legacyPrefix?: string,
): Promise<string | null> {
  const prod = (name: string) =>
    !previous && legacyPrefix ? `${legacyPrefix}${name}` : keys.production(symbol, name);
  const sources: [string, string][] = [];
  for (const name of MODEL_FILES) {
    const named = previous?.files?.[name];
    if (named && (await store.exists(named))) sources.push([name, named]);
    else if (await store.exists(prod(name))) sources.push([name, prod(name)]);
  }
  if (await store.exists(prod('manifest.json'))) sources.push(['manifest.json', prod('manifest.json')]);
  if (sources.length === 0) return null;

  const historyStamp = await freeStamp(store, `${keys.productionPrefix(symbol)}history/`, stamp);
  for (const [name, from] of sources) {
    await store.copy(from, keys.productionHistory(symbol, historyStamp, name));
  }
  return historyStamp;
}

/** Deletes every `versions/<v>/` object whose version is not in `keep`. */
async function pruneVersions(
  store: ArtifactStore,
  symbol: string,
  keep: (string | undefined)[],
): Promise<void> {
  const parent = `${keys.productionPrefix(symbol)}versions/`;
  const kept = new Set(keep.filter((v): v is string => typeof v === 'string').slice(0, KEPT_VERSIONS));
  for (const key of await store.list(parent)) {
    if (!kept.has(key.slice(parent.length).split('/')[0]!)) await store.delete(key);
  }
}
