/**
 * Checkpoints on the host: find the newest file a recipe's `checkpoints.path` matches, and take a
 * consistent snapshot of it. A checkpoint is taken only when it is complete: it has not changed for
 * `settleSec`, no process holds it open, and it is the same (size, mtime) before and after it is
 * copied aside. The snapshot, not the live file, is what is hashed and downloaded, so a recipe that
 * starts overwriting the file meanwhile cannot tear what we send. Nothing from the recipe's pattern
 * reaches a shell: the directory is quoted and the pattern is matched here.
 */
import { posix } from 'node:path';
import { TransportError } from '../errors.js';
import { shellQuote as q } from '../recipes/template.js';
import { mustExec, SAFE_SEGMENT_RE } from './execUtil.js';
import type { Transport } from './transport.js';

/** Where snapshots are made on the host, relative to the work dir. */
export const CHECKPOINT_SNAP_DIR = '.retrain-ckpt';

export interface CheckpointFile {
  name: string;
  bytes: number;
  /** mtime as `find -printf %T@` prints it (seconds with fraction), compared as a string. */
  mtime: string;
  /** Seconds since its last change, by the host's clock. */
  ageSec: number;
}

export interface CheckpointPattern {
  /** Dir relative to the work dir, e.g. `ckpt` or `out/ckpt`. */
  dir: string;
  matches(name: string): boolean;
}

/** `ckpt/step-*.pt` → dir `ckpt` and a matcher for `step-*.pt` (`*`, `?` within the name). */
export function checkpointPattern(path: string): CheckpointPattern {
  const dir = posix.dirname(path);
  const glob = posix.basename(path);
  const re = new RegExp(
    '^' +
      [...glob]
        .map((c) => (c === '*' ? '[^/]*' : c === '?' ? '[^/]' : c.replace(/[.+^${}()|[\]\\-]/g, '\\$&')))
        .join('') +
      '$',
  );
  return { dir, matches: (name) => SAFE_SEGMENT_RE.test(name) && re.test(name) };
}

/** The matching regular files (no symlinks) in the checkpoint dir, newest first. */
export async function listCheckpoints(
  t: Transport,
  workdir: string,
  pattern: CheckpointPattern,
): Promise<CheckpointFile[]> {
  const dir = `./${pattern.dir}`;
  const cmd = [
    `cd -- ${q(workdir)} 2>/dev/null || exit 0`,
    `d=${q(dir)}`,
    '[ -d "$d" ] && [ ! -L "$d" ] || exit 0',
    'printf \'now=%s\\n\' "$(date +%s.%N)"',
    `find "$d" -mindepth 1 -maxdepth 1 -type f -printf '%T@ %s %f\\0'`,
  ].join('\n');
  const r = await mustExec(t, cmd, 'list checkpoints', { timeoutMs: 30_000 });
  const nl = r.stdout.indexOf('\n');
  if (nl < 0) return [];
  const now = Number(/^now=(\S+)/.exec(r.stdout.slice(0, nl))?.[1]);
  const out: CheckpointFile[] = [];
  for (const rec of r.stdout.slice(nl + 1).split('\0')) {
    const m = /^(\d+(?:\.\d+)?) (\d+) (.+)$/s.exec(rec);
    if (!m || !pattern.matches(m[3]!)) continue;
    out.push({
      name: m[3]!,
      bytes: Number(m[2]),
      mtime: m[1]!,
      ageSec: Number.isFinite(now) ? Math.max(0, now - Number(m[1])) : 0,
    });
  }
  return out.sort((a, b) => Number(b.mtime) - Number(a.mtime) || (a.name < b.name ? 1 : -1));
}

export type Snapshot =
  | {
      ok: true;
      name: string;
      bytes: number;
      sha256: string;
      /** Relative to the work dir. */ snapRel: string;
    }
  | { ok: false; why: 'changed' | 'open' | 'gone' };

/**
 * Copies `file` aside (at low CPU and I/O priority) when it is still exactly as listed and no
 * process has it open, checks it did not change during the copy, and hashes the copy.
 */
export async function snapshotCheckpoint(
  t: Transport,
  workdir: string,
  pattern: CheckpointPattern,
  file: CheckpointFile,
): Promise<Snapshot> {
  if (!SAFE_SEGMENT_RE.test(file.name)) {
    throw new TransportError(`checkpoint name ${JSON.stringify(file.name)} is not a plain file name`, {
      retryable: false,
    });
  }
  const rel = `./${pattern.dir}/${file.name}`;
  const snapRel = `${CHECKPOINT_SNAP_DIR}/${file.name}`;
  const cmd = [
    'set -u',
    `cd -- ${q(workdir)} 2>/dev/null || { echo gone; exit 0; }`,
    `f=${q(rel)}; s=${q(snapRel)}; want=${q(`${file.mtime} ${file.bytes}`)}`,
    'st() { [ -f "$f" ] && [ ! -L "$f" ] && find "$f" -maxdepth 0 -printf \'%T@ %s\'; }',
    // /proc/<pid>/fd links name the real path; a process holding the file means it may still write.
    'abs="$(cd -- "$(dirname -- "$f")" && pwd -P)/$(basename -- "$f")"',
    'held() { [ -d /proc/self/fd ] && find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 -lname "$abs" -print -quit 2>/dev/null | grep -q .; }',
    '[ "$(st)" = "$want" ] || { [ -f "$f" ] && echo changed || echo gone; exit 0; }',
    'if held; then echo open; exit 0; fi',
    `mkdir -p -- ${q(CHECKPOINT_SNAP_DIR)} && rm -f -- "$s.tmp"`,
    'lo=""; command -v ionice >/dev/null 2>&1 && lo="ionice -c3"',
    'nice -n 19 $lo cp -- "$f" "$s.tmp" || { echo changed; exit 0; }',
    'if [ "$(st)" != "$want" ] || held; then rm -f -- "$s.tmp"; echo changed; exit 0; fi',
    'mv -f -- "$s.tmp" "$s"',
    'h=$(sha256sum -- "$s") || exit 3',
    'echo "ok ${h%% *} $(find "$s" -maxdepth 0 -printf %s)"',
  ].join('\n');
  const r = await mustExec(t, cmd, `snapshot checkpoint ${file.name}`, { timeoutMs: 30 * 60_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  const m = /^ok ([0-9a-f]{64}) (\d+)$/.exec(line);
  if (m) return { ok: true, name: file.name, sha256: m[1]!, bytes: Number(m[2]), snapRel };
  if (line === 'changed' || line === 'open' || line === 'gone') return { ok: false, why: line };
  throw new TransportError(`unexpected answer while snapshotting a checkpoint: ${JSON.stringify(line)}`);
}

/** Removes the snapshot copies (best effort). */
export async function dropSnapshots(t: Transport, workdir: string): Promise<void> {
  await t.exec(`cd -- ${q(workdir)} 2>/dev/null && rm -rf -- ${q(CHECKPOINT_SNAP_DIR)}`, {
    timeoutMs: 30_000,
  });
}
