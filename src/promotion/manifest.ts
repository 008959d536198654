import { z } from 'zod';
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import type { CandidateMetrics } from './metrics.js';

/** The two files a production model is made of; manifest.json describes them. */
export const MODEL_FILES = ['model.bin', 'metrics.json'] as const;
export type ModelFile = (typeof MODEL_FILES)[number];

/** What a manifest says about another production model (the one it replaced, or rolled back). */
export interface ManifestRef {
  jobId: string;
  date: string;
  sha256: Record<string, string>;
}

/**
 * `models/production/<SYMBOL>/manifest.json`: the single pointer to the production model. It names
 * the immutable copies of its files (`files`, under `versions/<version>/`) with their SHA-256, and
 * carries the lineage. Manifests written before versioned publishing have no `version`/`files`; their
 * files are the top-level `model.bin`/`metrics.json`.
 */
export interface ProductionManifest {
  symbol: string;
  /** The training job that produced the model (for a rollback: the restored model's job). */
  jobId: string;
  /** YYYYMMDD, the candidate's run date. */
  date: string;
  /** When this manifest was published (a rollback's own time for a rollback). */
  promotedAt: string;
  /** The rules-v1 rule that promoted it, or `rollback`. */
  rule: string;
  rulesVersion: string;
  metrics: CandidateMetrics;
  sha256: Record<ModelFile, string>;
  /** The version folder (`versions/<version>/`) holding this model's immutable files. */
  version?: string;
  /** Keys of the immutable copies readers must read (see readProduction). */
  files?: Record<ModelFile, string>;
  /** The manifest this one replaced, or null when there was none. */
  replaced: ManifestRef | null;
  /** Where the replaced production files were archived (`history/<stamp>/`), or null when none. */
  history: string | null;
  /** Only on a rollback: the production it replaced (null when there was none) and where it went. */
  rolledBackFrom?: (ManifestRef & { history: string | null }) | null;
  /** Only on a rollback: the history entry that was restored (`.../history/<stamp>/`). */
  restoredFrom?: string;
  /** Only on a rollback: when the restored model was first promoted. */
  originallyPromotedAt?: string;
}

const sha = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex SHA-256');
const ref = z.looseObject({
  jobId: z.string(),
  date: z.string(),
  sha256: z.record(z.string(), z.string()),
});

/** Shape check of a manifest read from the store (metrics are validated by their own schema). */
const ManifestSchema = z.looseObject({
  symbol: z.string(),
  jobId: z.string().min(1),
  date: z.string(),
  promotedAt: z.string(),
  rule: z.string(),
  rulesVersion: z.string(),
  metrics: z.record(z.string(), z.unknown()),
  sha256: z.looseObject({ 'model.bin': sha, 'metrics.json': sha }),
  version: z.string().optional(),
  files: z.object({ 'model.bin': z.string(), 'metrics.json': z.string() }).optional(),
  replaced: ref.nullable(),
  history: z.string().nullable(),
});

export type ParsedManifest = { ok: true; manifest: ProductionManifest } | { ok: false; reason: string };

/**
 * Parses manifest.json bytes of `symbol`. `files` must point below the symbol's production folder,
 * so a damaged manifest can never make a reader fetch another symbol's (or any other) object.
 */
export function parseManifest(symbol: string, bytes: Buffer): ParsedManifest {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: `manifest.json is not valid JSON: ${(err as Error).message}` };
  }
  const res = ManifestSchema.safeParse(value);
  if (!res.success) {
    const issue = res.error.issues[0]!;
    const field = issue.path.length ? issue.path.map(String).join('.') : '(root)';
    return { ok: false, reason: `manifest.json is malformed: ${field}: ${issue.message}` };
  }
  const m = res.data as unknown as ProductionManifest;
  if (m.symbol !== symbol) {
    return { ok: false, reason: `manifest.json names symbol ${JSON.stringify(m.symbol)}, not ${symbol}` };
  }
  const prefix = keys.productionPrefix(symbol);
  for (const name of MODEL_FILES) {
    const key = m.files?.[name];
    if (key !== undefined && (!key.startsWith(prefix) || key.includes('..'))) {
      return { ok: false, reason: `manifest.json points ${name} outside ${prefix}: ${key}` };
    }
  }
  return { ok: true, manifest: m };
}

/** The keys a manifest's files are read from: its immutable copies, or (older manifests) the top level. */
export function manifestFileKeys(symbol: string, m: ProductionManifest): Record<ModelFile, string> {
  return {
    'model.bin': m.files?.['model.bin'] ?? keys.production(symbol, 'model.bin'),
    'metrics.json': m.files?.['metrics.json'] ?? keys.production(symbol, 'metrics.json'),
  };
}

/**
 * Reads a manifest for bookkeeping (lineage, archiving): a missing or unreadable one is null. Readers
 * of the model use readProduction instead.
 */
export async function readManifest(
  store: ArtifactStore,
  symbol: string,
  key = keys.production(symbol, 'manifest.json'),
): Promise<ProductionManifest | null> {
  let bytes: Buffer;
  try {
    bytes = await store.getBytes(key);
  } catch {
    return null;
  }
  const parsed = parseManifest(symbol, bytes);
  return parsed.ok ? parsed.manifest : null;
}

export function refOf(m: ProductionManifest): ManifestRef {
  return { jobId: m.jobId, date: m.date, sha256: { ...m.sha256 } };
}

/** 2026-01-16T00:00:05.123Z → 20260116T000005Z */
export function toStamp(d: Date): string {
  return d
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/** A history or version folder name: YYYYMMDDTHHMMSSZ, with -N when several share a second. */
export const STAMP_RE = /^\d{8}T\d{6}Z(?:-([1-9]\d*))?$/;

/** Orders stamps by time, then by their -N suffix (plain before -2 before -10). */
export function compareStamps(a: string, b: string): number {
  const base = (s: string) => s.slice(0, 16);
  const n = (s: string) => Number(STAMP_RE.exec(s)?.[1] ?? 1);
  return base(a) < base(b) ? -1 : base(a) > base(b) ? 1 : n(a) - n(b);
}

/**
 * The stamp, or stamp-2, stamp-3, ... when a folder of that name already holds something under
 * `parent` (e.g. `models/production/BTC/history/`).
 */
export async function freeStamp(store: ArtifactStore, parent: string, stamp: string): Promise<string> {
  const taken = new Set(
    (await store.list(parent)).map((k) => k.slice(parent.length).split('/')[0]).filter(Boolean),
  );
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? stamp : `${stamp}-${n}`;
    if (!taken.has(candidate)) return candidate;
  }
}
