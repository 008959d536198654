import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChecksumError, InputError, ProductionReadError } from '../errors.js';
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { sha256Hex } from '../util/hash.js';
import {
  compareStamps,
  MODEL_FILES,
  parseManifest,
  readManifest,
  refOf,
  STAMP_RE,
  type ManifestRef,
  type ProductionManifest,
} from './manifest.js';
import { parseMetricsText } from './metrics.js';
import type { ProductionLock } from './lock.js';
import { publishProduction } from './publish.js';

/** One `models/production/<SYMBOL>/history/<stamp>/` folder. */
export interface HistoryEntry {
  stamp: string;
  /** `models/production/<SYMBOL>/history/<stamp>/` */
  prefix: string;
  /** The file names it holds. */
  files: string[];
}

/** The symbol's history entries, oldest first. */
export async function listHistory(store: ArtifactStore, symbol: string): Promise<HistoryEntry[]> {
  const parent = `${keys.productionPrefix(symbol)}history/`;
  const byStamp = new Map<string, string[]>();
  for (const key of await store.list(parent)) {
    const [stamp, ...rest] = key.slice(parent.length).split('/');
    if (!stamp || !STAMP_RE.test(stamp) || rest.length !== 1) continue;
    byStamp.set(stamp, [...(byStamp.get(stamp) ?? []), rest[0]!]);
  }
  return [...byStamp.keys()]
    .sort(compareStamps)
    .map((stamp) => ({ stamp, prefix: `${parent}${stamp}/`, files: byStamp.get(stamp)!.sort() }));
}

export interface RollbackOptions {
  store: ArtifactStore;
  /** An already validated symbol. */
  symbol: string;
  /** The history stamp to restore; default: the most recent entry (the model production replaced). */
  to?: string;
  /** Check and tell, write nothing. */
  dryRun?: boolean;
  now?: () => Date;
  /** Held around reading production and publishing (not on a dry run); see promoteCandidate. */
  lock?: ProductionLock;
}

export interface RollbackResult {
  symbol: string;
  dryRun: boolean;
  /** The history entry restored. */
  restored: ManifestRef & { stamp: string; from: string };
  /** The production that was replaced (and archived), or null when there was none. */
  replaced: ManifestRef | null;
  /** Where the replaced production was archived (null on a dry run or when there was none). */
  historyStamp: string | null;
  /** The new production manifest (absent on a dry run). */
  manifest?: ProductionManifest;
}

/**
 * Restores a history entry as production, through publishProduction: the replaced production goes
 * to history like on any promotion, and the new manifest records `rule: rollback`, `rolledBackFrom`
 * (what it replaced) and `restoredFrom` (the entry). The entry's model.bin and metrics.json must match
 * the SHA-256s of its own manifest.json, so a damaged entry is never published.
 *
 * InputError (exit 2) when the symbol has nothing under production, has no history, or `to` is not a
 * stamp of it; ProductionReadError when the entry is incomplete or damaged.
 */
export async function rollbackProduction(opts: RollbackOptions): Promise<RollbackResult> {
  const { store, symbol } = opts;
  const prefix = keys.productionPrefix(symbol);
  if (opts.to !== undefined && !STAMP_RE.test(opts.to)) {
    throw new InputError(
      `invalid --to ${JSON.stringify(opts.to)}: expected a history stamp like 20260116T003000Z (or 20260116T003000Z-2)`,
    );
  }
  // History, the entry and production are read, and production replaced, under the symbol's lock:
  // "the most recent entry" is the model the current production replaced, not an older one.
  const restore = async (signal?: AbortSignal): Promise<RollbackResult> => {
    const history = await listHistory(store, symbol);
    if (history.length === 0) {
      const anything = (await store.list(prefix)).length > 0;
      throw new InputError(
        anything
          ? `no history for ${symbol}: nothing to roll back to (${prefix}history/ is empty)`
          : `unknown symbol ${symbol}: it has no production model (nothing under ${prefix})`,
      );
    }
    const entry =
      opts.to === undefined ? history[history.length - 1]! : history.find((h) => h.stamp === opts.to);
    if (!entry) {
      const have = history.map((h) => h.stamp);
      throw new InputError(
        `no history entry ${opts.to} for ${symbol} (have: ${have.slice(-5).join(', ')}${have.length > 5 ? ', ...' : ''})`,
      );
    }

    const restored = await readEntry(store, symbol, entry);
    const current = await readManifest(store, symbol);
    const replaced = current ? refOf(current) : null;
    const result: RollbackResult = {
      symbol,
      dryRun: opts.dryRun === true,
      restored: { ...refOf(restored.manifest), stamp: entry.stamp, from: entry.prefix },
      replaced,
      historyStamp: null,
    };
    if (opts.dryRun) return result;

    const out = await publishProduction({
      store,
      symbol,
      date: restored.manifest.date,
      jobId: restored.manifest.jobId,
      rule: 'rollback',
      decidedAt: (opts.now ?? (() => new Date()))(),
      metrics: restored.metrics,
      metricsBytes: restored.metricsBytes,
      modelKey: `${entry.prefix}model.bin`,
      modelSha256: restored.manifest.sha256['model.bin'],
      rollback: { restoredFrom: entry.prefix, originallyPromotedAt: restored.manifest.promotedAt },
      ...(signal ? { signal } : {}),
    });
    return { ...result, historyStamp: out.historyStamp, manifest: out.manifest };
  };
  return opts.dryRun || !opts.lock ? restore() : opts.lock.hold(symbol, restore);
}

/** Reads and checks a history entry: its manifest, and metrics.json and model.bin matching it. */
async function readEntry(store: ArtifactStore, symbol: string, entry: HistoryEntry) {
  const damaged = (why: string) =>
    new ProductionReadError(`history entry ${entry.prefix} cannot be restored: ${why}`);
  for (const name of [...MODEL_FILES, 'manifest.json']) {
    if (!entry.files.includes(name)) throw damaged(`${name} is missing`);
  }
  const parsed = parseManifest(symbol, await store.getBytes(`${entry.prefix}manifest.json`));
  if (!parsed.ok) throw damaged(parsed.reason);
  const manifest = parsed.manifest;
  const metricsBytes = await store.getBytes(`${entry.prefix}metrics.json`);
  const metricsSha = sha256Hex(metricsBytes);
  if (metricsSha !== manifest.sha256['metrics.json']) {
    throw damaged(
      `metrics.json has sha256 ${metricsSha}, its manifest says ${manifest.sha256['metrics.json']}`,
    );
  }
  const metrics = parseMetricsText(metricsBytes.toString('utf8'));
  if (!metrics.ok) throw damaged(metrics.reason);
  const dir = await mkdtemp(join(tmpdir(), 'retrain-rollback-'));
  try {
    await store.getFile(`${entry.prefix}model.bin`, join(dir, 'model.bin'), manifest.sha256['model.bin']);
  } catch (err) {
    if (err instanceof ChecksumError) throw damaged(`model.bin does not match its manifest: ${err.message}`);
    throw err;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { manifest, metricsBytes, metrics: metrics.metrics };
}
