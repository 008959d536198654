/**
 * Checkpoints that outlive the host: while a training runs, the newest complete checkpoint is
 * copied back (hash-verified) to `ml-artifacts/<jobId>/checkpoints/`, with a manifest
 * (`checkpoints/latest.json`) saying which file it is and how much training it stands for. The next
 * attempt of the same run reads the manifest and ships the checkpoint with the dataset.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ChecksumError, asRetrainError } from '../errors.js';
import {
  checkpointPattern,
  dropSnapshots,
  listCheckpoints,
  snapshotCheckpoint,
  type CheckpointFile,
  type CheckpointPattern,
  type Snapshot,
} from '../remote/checkpoints.js';
import { SAFE_SEGMENT_RE } from '../remote/execUtil.js';
import type { Transport } from '../remote/transport.js';
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { sha256File } from '../util/hash.js';

/** A checkpoint is taken only once it has not changed for this long (seconds). */
export const CHECKPOINT_SETTLE_SEC = 2;

export const checkpointKeys = {
  manifest: (jobId: string) => keys.artifact(jobId, 'checkpoints/latest.json'),
  file: (jobId: string, name: string) => keys.artifact(jobId, `checkpoints/${name}`),
};

/** `checkpoints/latest.json`: the newest checkpoint in the store and what it stands for. */
export interface CheckpointManifest {
  runId: string;
  jobId: string;
  /** File name (as the recipe wrote it) and store key. */
  name: string;
  key: string;
  sha256: string;
  bytes: number;
  /** The attempt that wrote it, and its mtime on that host (to not sync the same file twice). */
  attempt: number;
  mtime: string;
  syncedAt: string;
  /** Seconds of training (across resumed attempts) the checkpoint stands for. */
  trainedSec: number;
}

/**
 * The checkpoint a new attempt of `runId` can resume from, or null. A manifest of another run (a
 * `--force` re-run of the date) or one that does not hold together is ignored, with a warning for
 * the latter: a retry then starts from zero, as it would without checkpoints.
 */
export async function readResumePoint(
  store: ArtifactStore,
  jobId: string,
  runId: string,
  log?: Logger,
): Promise<CheckpointManifest | null> {
  const key = checkpointKeys.manifest(jobId);
  if (!(await store.exists(key))) return null;
  let m: CheckpointManifest;
  try {
    m = await store.getJson<CheckpointManifest>(key);
  } catch (err) {
    log?.warn(
      { event: 'checkpoint.manifest_unreadable', err: asRetrainError(err).message },
      'checkpoint manifest unreadable; starting from zero',
    );
    return null;
  }
  const valid =
    m !== null &&
    typeof m === 'object' &&
    typeof m.name === 'string' &&
    SAFE_SEGMENT_RE.test(m.name) &&
    m.key === checkpointKeys.file(jobId, m.name) &&
    typeof m.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(m.sha256) &&
    typeof m.trainedSec === 'number' &&
    Number.isFinite(m.trainedSec) &&
    m.trainedSec >= 0;
  if (!valid) {
    log?.warn(
      { event: 'checkpoint.manifest_invalid', key },
      `checkpoint manifest ${key} is invalid; starting from zero`,
    );
    return null;
  }
  return m.runId === runId && m.jobId === jobId ? m : null;
}

export interface CheckpointSyncOptions {
  transport: Transport;
  workdir: string;
  /** The recipe's `checkpoints.path`. */
  path: string;
  store: ArtifactStore;
  jobId: string;
  runId: string;
  attempt: number;
  /** Local scratch dir for downloads. */
  stagingDir: string;
  /** Training seconds the attempt started from (the checkpoint it resumed from), 0 otherwise. */
  baseTrainedSec: number;
  /** When this attempt's training started, by our clock (epoch ms). */
  startedAtMs: number;
  /** The checkpoint already in the store (so a reattached worker does not send it again). */
  previous: CheckpointManifest | null;
  log: Logger;
}

/**
 * One attempt's checkpoint sync. `tick()` looks for the newest complete checkpoint and, when it is
 * new, snapshots it on the host, downloads and verifies the snapshot, stores it (verified again by
 * the store) and then the manifest, and deletes the checkpoint it replaces. The manifest is written
 * last, so it never names a checkpoint that is not fully in the store. Ticks never overlap.
 */
export class CheckpointSync {
  private readonly pattern: CheckpointPattern;
  private last: CheckpointManifest | null;
  private running: Promise<CheckpointManifest | null> | null = null;

  constructor(private readonly o: CheckpointSyncOptions) {
    this.pattern = checkpointPattern(o.path);
    this.last = o.previous;
  }

  tick(): Promise<CheckpointManifest | null> {
    this.running ??= this.syncOnce().finally(() => (this.running = null));
    return this.running;
  }

  private async syncOnce(): Promise<CheckpointManifest | null> {
    const o = this.o;
    const files = await listCheckpoints(o.transport, o.workdir, this.pattern);
    // The newest complete one: a newer one still being written (changed lately, or held open) is
    // left for a later tick, and the next older one taken meanwhile. Never older than what we have.
    let file: CheckpointFile | undefined;
    let snap: Snapshot | undefined;
    for (const f of files.filter((c) => c.ageSec >= CHECKPOINT_SETTLE_SEC).slice(0, 3)) {
      if (
        this.isLast(f) ||
        (this.last && this.last.attempt === o.attempt && Number(f.mtime) < Number(this.last.mtime))
      )
        return null;
      const s = await snapshotCheckpoint(o.transport, o.workdir, this.pattern, f);
      if (s.ok) {
        file = f;
        snap = s;
        break;
      }
      o.log.debug({ event: 'checkpoint.not_ready', file: f.name, why: s.why }, 'checkpoint not ready');
    }
    if (!file || !snap?.ok) return null;
    if (this.last && this.last.sha256 === snap.sha256 && this.last.name === snap.name) {
      this.last = { ...this.last, mtime: file.mtime };
      return null;
    }
    const dir = join(o.stagingDir, 'checkpoints');
    await mkdir(dir, { recursive: true });
    const local = join(dir, snap.name);
    try {
      await o.transport.getFile(`${o.workdir}/${snap.snapRel}`, local);
      const got = await sha256File(local);
      if (got.sha256 !== snap.sha256) {
        throw new ChecksumError(`checkpoint ${snap.name}: downloaded SHA-256 differs from the host's`);
      }
      const key = checkpointKeys.file(o.jobId, snap.name);
      await o.store.putFile(key, local, snap.sha256);
      const trainedSec = Math.max(0, o.baseTrainedSec + (Date.now() - o.startedAtMs) / 1000 - file.ageSec);
      const manifest: CheckpointManifest = {
        runId: o.runId,
        jobId: o.jobId,
        name: snap.name,
        key,
        sha256: snap.sha256,
        bytes: snap.bytes,
        attempt: o.attempt,
        mtime: file.mtime,
        syncedAt: new Date().toISOString(),
        trainedSec: Math.round(trainedSec * 10) / 10,
      };
      await o.store.putJson(checkpointKeys.manifest(o.jobId), manifest);
      const replaced = this.last;
      this.last = manifest;
      if (replaced && replaced.key !== key) await o.store.delete(replaced.key).catch(() => undefined);
      o.log.info(
        {
          event: 'checkpoint.synced',
          file: snap.name,
          bytes: snap.bytes,
          sha256: snap.sha256,
          trainedSec: manifest.trainedSec,
        },
        `checkpoint ${snap.name} stored (${snap.bytes} bytes)`,
      );
      return manifest;
    } finally {
      await rm(local, { force: true });
      await dropSnapshots(o.transport, o.workdir).catch(() => undefined);
    }
  }

  private isLast(f: CheckpointFile): boolean {
    return (
      this.last !== null &&
      this.last.name === f.name &&
      this.last.mtime === f.mtime &&
      this.last.bytes === f.bytes
    );
  }
}
