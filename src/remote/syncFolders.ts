/**
 * A recipe's `sync:`: folders of the work dir pushed to the store while the training runs and
 * once more after it ends (success or failure). Each file goes to
 * `ml-artifacts/<jobId>/sync/<folder>/<path>`, verified against the SHA-256 the host computed;
 * a file unchanged since its last push is not sent again.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { RecipeSync } from '../recipes/schema.js';
import { shellQuote as q } from '../recipes/template.js';
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { SAFE_SEGMENT_RE } from './execUtil.js';
import type { Transport } from './transport.js';

/** Files listed per folder and push; the rest wait for the next one. */
export const MAX_SYNC_FILES = 5000;

export function syncKey(jobId: string, rel: string): string {
  return keys.artifact(jobId, `sync/${rel}`);
}

export interface SyncResult {
  pushed: string[];
  /** Files that could not be pushed this time (changing while read, a store error). */
  failed: { file: string; err: string }[];
  /** Names left out because they are not plain path segments. */
  skipped: string[];
}

export class FolderSync {
  /** Work-dir-relative path → SHA-256 last stored. */
  private readonly pushed = new Map<string, string>();

  constructor(
    private readonly opts: {
      store: ArtifactStore;
      jobId: string;
      folders: RecipeSync[];
      /** Local scratch dir for the copies on their way to the store. */
      localDir: string;
    },
  ) {}

  /** Every file of every folder on the host with its SHA-256 (one exec). */
  private async list(t: Transport, workdir: string): Promise<Map<string, string>> {
    const cmd = [
      `cd -- ${q(workdir)} || exit 0`,
      ...this.opts.folders.map(
        (f) =>
          `[ -d ${q(f.path)} ] && [ ! -L ${q(f.path)} ] && find ${q(f.path)} -type f -print0 | head -z -n ${MAX_SYNC_FILES} | xargs -0 -r sha256sum --`,
      ),
      'true',
    ].join('\n');
    const r = await t.exec(cmd, { timeoutMs: 120_000, maxOutputBytes: 8 * 1024 * 1024 });
    const out = new Map<string, string>();
    for (const line of r.stdout.split('\n')) {
      const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
      if (m) out.set(m[2]!, m[1]!);
    }
    return out;
  }

  /** Pushes what changed since the last call. Throws only when the host cannot be listed. */
  async push(t: Transport, workdir: string): Promise<SyncResult> {
    const res: SyncResult = { pushed: [], failed: [], skipped: [] };
    for (const [rel, sha256] of await this.list(t, workdir)) {
      if (!rel.split('/').every((seg) => SAFE_SEGMENT_RE.test(seg))) {
        res.skipped.push(rel);
        continue;
      }
      if (this.pushed.get(rel) === sha256) continue;
      const local = join(this.opts.localDir, rel);
      try {
        await mkdir(dirname(local), { recursive: true });
        await t.getFile(`${workdir}/${rel}`, local);
        // A file rewritten between the listing and the copy fails here and goes next time.
        await this.opts.store.putFile(syncKey(this.opts.jobId, rel), local, sha256);
        this.pushed.set(rel, sha256);
        res.pushed.push(rel);
      } catch (err) {
        res.failed.push({ file: rel, err: err instanceof Error ? err.message : String(err) });
      }
    }
    return res;
  }

  /** Seconds between pushes while the training runs: the shortest `every` of the folders. */
  get everySec(): number {
    return Math.min(...this.opts.folders.map((f) => f.every));
  }
}
