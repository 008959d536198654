import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { sha256File } from '../util/hash.js';
import type { CandidateMetrics } from './metrics.js';
import { RULES_VERSION } from './rules.js';

/** The files that make up a production model, in the order they are archived. */
export const PRODUCTION_FILES = ['model.bin', 'metrics.json', 'manifest.json'] as const;

/** `models/production/<SYMBOL>/manifest.json` */
export interface ProductionManifest {
  symbol: string;
  jobId: string;
  /** YYYYMMDD, the candidate's run date. */
  date: string;
  promotedAt: string;
  rule: string;
  rulesVersion: string;
  metrics: CandidateMetrics;
  sha256: { 'model.bin': string; 'metrics.json': string };
  /** The manifest this one replaced, or null when there was none. */
  replaced: { jobId: string; date: string; sha256: Record<string, string> } | null;
  /** Where the replaced production files were archived (`history/<stamp>/`), or null when none. */
  history: string | null;
}

export interface PublishInput {
  store: ArtifactStore;
  symbol: string;
  date: string;
  jobId: string;
  rule: string;
  /** The decision time; also names the history folder (YYYYMMDDTHHMMSSZ). */
  decidedAt: Date;
  metrics: CandidateMetrics;
  /** The exact metrics.json bytes the decision was made on: these become production's. */
  metricsBytes: Buffer;
}

export interface PublishOutput {
  manifest: ProductionManifest;
  /** The history stamp the previous production went to, or null when there was none. */
  historyStamp: string | null;
}

/**
 * Replaces a symbol's production model with a candidate. The only writer of `models/production/`.
 *
 * Order, so that an interruption never leaves a manifest naming a model that is not in place:
 * 1. copy every existing production file to `history/<stamp>/` (verified copies);
 * 2. delete the old manifest (production is "in flux" while there is none);
 * 3. write model.bin (downloaded from the candidate, hashed, uploaded with that hash verified) and
 *    metrics.json (the bytes the decision was made on);
 * 4. write manifest.json last.
 * A failure at any step throws; re-running completes the publish (the partial production is archived
 * again first). Not a lock: callers run at most one publish per symbol at a time.
 */
export async function publishProduction(input: PublishInput): Promise<PublishOutput> {
  const { store, symbol, date, jobId } = input;
  const prod = (name: string) => keys.production(symbol, name);

  const present: string[] = [];
  for (const name of PRODUCTION_FILES) if (await store.exists(prod(name))) present.push(name);
  const previous = present.includes('manifest.json')
    ? await readManifest(store, prod('manifest.json'))
    : null;

  let historyStamp: string | null = null;
  if (present.length > 0) {
    historyStamp = await freeStamp(store, symbol, toStamp(input.decidedAt));
    for (const name of present)
      await store.copy(prod(name), keys.productionHistory(symbol, historyStamp, name));
    if (present.includes('manifest.json')) await store.delete(prod('manifest.json'));
  }

  const dir = await mkdtemp(join(tmpdir(), 'retrain-promote-'));
  let modelSha: string;
  try {
    const local = join(dir, 'model.bin');
    await store.getFile(keys.candidate(symbol, date, 'model.bin'), local);
    modelSha = (await sha256File(local)).sha256;
    await store.putFile(prod('model.bin'), local, modelSha);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const metricsPut = await store.putBytes(prod('metrics.json'), input.metricsBytes);

  const manifest: ProductionManifest = {
    symbol,
    jobId,
    date,
    promotedAt: input.decidedAt.toISOString(),
    rule: input.rule,
    rulesVersion: RULES_VERSION,
    metrics: input.metrics,
    sha256: { 'model.bin': modelSha, 'metrics.json': metricsPut.sha256 },
    replaced: previous ? { jobId: previous.jobId, date: previous.date, sha256: previous.sha256 } : null,
    history: historyStamp === null ? null : `${keys.productionPrefix(symbol)}history/${historyStamp}/`,
  };
  await store.putJson(prod('manifest.json'), manifest);
  return { manifest, historyStamp };
}

/** Reads a production manifest; an unreadable one counts as absent (its file is still archived). */
export async function readManifest(store: ArtifactStore, key: string): Promise<ProductionManifest | null> {
  try {
    const m = await store.getJson<ProductionManifest>(key);
    return m && typeof m === 'object' && typeof m.jobId === 'string' ? m : null;
  } catch {
    return null;
  }
}

/** 2026-01-16T00:00:05.123Z → 20260116T000005Z */
export function toStamp(d: Date): string {
  return d
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/** The stamp, or stamp-2, stamp-3, ... when a history folder of that name already exists. */
async function freeStamp(store: ArtifactStore, symbol: string, stamp: string): Promise<string> {
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? stamp : `${stamp}-${n}`;
    const taken = await store.list(`${keys.productionPrefix(symbol)}history/${candidate}/`);
    if (taken.length === 0) return candidate;
  }
}
