/**
 * Staging a work dir on the host: inputs/, recipe/, out/ and run.sh, verified by SHA-256.
 */
import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { ChecksumError, TransportError } from '../errors.js';
import type { LoadedRecipe } from '../recipes/loader.js';
import { shellQuote as q } from '../recipes/template.js';
import { parseSha256Txt, sha256Hex } from '../util/hash.js';
import { Limiter } from '../util/limiter.js';
import { settleAll } from '../util/settle.js';
import { mustExec, SAFE_SEGMENT_RE } from './execUtil.js';
import { untarCommand } from './pack.js';
import type { Transport } from './transport.js';
import { WORKDIR_SUBDIRS } from './workdir.js';

/** A file to stage: a local file, or bytes already in memory (sent from there, never written here). */
export type StageFile = {
  /** Path relative to the work dir, e.g. `inputs/features.csv`; plain segments only. */
  remoteRel: string;
  sha256: string;
} & ({ localPath: string; data?: undefined } | { data: Buffer; localPath?: undefined });

/**
 * A deterministic tar (src/remote/pack.ts) shipped as one file and extracted on the host into
 * `into`; each entry is verified there against `entries` after extraction.
 */
export type StageArchive = StageFile & {
  /** Dir relative to the work dir the entries land in, e.g. `inputs`. */
  into: string;
  /** Entry name → SHA-256 of its content. */
  entries: Record<string, string>;
};

/** The recipe file and its shipped files as StageFiles under `recipe/`. */
export async function recipeStageFiles(recipe: LoadedRecipe): Promise<StageFile[]> {
  // The bytes the loader validated and hashed, where it holds them; a file read again here and
  // changed since fails the check on the host.
  return [
    { data: recipe.fileBytes, remoteRel: `recipe/${posix.basename(recipe.file)}`, sha256: recipe.fileSha256 },
    ...recipe.files.map((f): StageFile =>
      f.data
        ? { data: f.data, remoteRel: `recipe/${f.name}`, sha256: f.sha256 }
        : { localPath: f.path, remoteRel: `recipe/${f.name}`, sha256: f.sha256 },
    ),
  ];
}

/**
 * Prepares the work dir: creates inputs/, recipe/ and out/, uploads each file or archive whose
 * remote copy is missing or differs (a transport that resumes partial uploads resumes them),
 * verifies every upload's SHA-256 on the host (ChecksumError naming the file on a mismatch; a big
 * one while the next is sent, the rest in one call), extracts each archive whose entries are not
 * already in place and verifies the entries, then installs run.sh with mode 0700 (by rename, so a
 * shell already reading an older run.sh is not disturbed; a fresh work dir, which has no older one,
 * gets it in place, verified with the rest). Idempotent: a second call with the same inputs sends nothing.
 */
export async function stageRun(
  t: Transport,
  opts: {
    workdir: string;
    files: StageFile[];
    archives?: StageArchive[];
    script: string;
    /**
     * The work dir was just made by claimWorkdir (WORKDIR_SUBDIRS inside, nothing else): nothing
     * on the host to compare with, so the first look (one exec, a round trip) is skipped.
     */
    fresh?: boolean;
  },
): Promise<void> {
  const { workdir } = opts;
  const archives = opts.archives ?? [];
  const uploads: StageFile[] = [...opts.files, ...archives];
  const seen = new Set<string>();
  for (const a of archives) {
    checkRel(a.into);
    for (const name of Object.keys(a.entries)) checkRel(posix.join(a.into, name));
  }
  for (const f of uploads) {
    checkRel(f.remoteRel);
    if (['run.sh', 'run.sh.tmp'].includes(f.remoteRel) || seen.has(f.remoteRel)) {
      throw new TransportError(`cannot stage ${f.remoteRel}: reserved or listed twice`, { retryable: false });
    }
    seen.add(f.remoteRel);
  }
  const dirs = new Set(['inputs', 'recipe', 'out']);
  for (const f of uploads) if (posix.dirname(f.remoteRel) !== '.') dirs.add(posix.dirname(f.remoteRel));
  for (const a of archives) dirs.add(a.into);

  const scriptSha = sha256Hex(opts.script);
  const allRels = [...uploads.map((f) => f.remoteRel), 'run.sh'];
  const sizes = await localSizes(uploads);
  // openssl pays off for big files only: its start costs more than hashing a small file.
  const big = sizes.reduce((a, b) => a + b, 0) >= OPENSSL_FROM_BYTES;
  const missing = [...dirs].filter((d) => !(WORKDIR_SUBDIRS as readonly string[]).includes(d));
  let before: Record<string, string> = {};
  if (!opts.fresh) before = await remoteHashes(t, workdir, allRels, [...dirs], big);
  else if (missing.length) await mkdirs(t, workdir, missing);

  // A big upload is verified on the host while the next one is sent (its bytes are still in the
  // host's page cache); a file the host already had with the right hash was verified just now.
  const early = new EarlyChecks(t, workdir);
  // A few uploads at once: a small file costs several round trips to the host (open, write,
  // close, stat, rename), which is what a symbol's staging waits on over a long link.
  const limit = new Limiter(UPLOAD_CONCURRENCY);
  const sends: Promise<void>[] = [];
  for (const [i, f] of uploads.entries()) {
    if (before[f.remoteRel] === f.sha256) {
      early.known(f.remoteRel);
      continue;
    }
    sends.push(
      limit.run(async () => {
        const to = posix.join(workdir, f.remoteRel);
        await (f.data ? t.putData(f.data, to) : t.putFile(f.localPath, to));
        if (sizes[i]! >= OPENSSL_FROM_BYTES) early.check(f.remoteRel, f.sha256);
      }),
    );
  }
  // A fresh work dir has no run.sh that a shell may be reading: the script is sent to its place
  // (no `mv` process there). Nothing starts it before staging has succeeded, and a failed staging
  // is staged again (not fresh then) before anything starts.
  const sendScript = before['run.sh'] !== scriptSha;
  const scriptRel = sendScript && !opts.fresh ? 'run.sh.tmp' : 'run.sh';
  if (sendScript) {
    const script = Buffer.from(opts.script, 'utf8');
    // Sent with run.sh's final mode: installing it is then a rename alone (no chmod process).
    sends.push(limit.run(() => t.putData(script, posix.join(workdir, scriptRel), 0o700)));
  }
  await settleAll(sends);
  await early.settled();

  // The rest is one exec (each exec costs a shell start on the host, and over ssh a login shell):
  // verify every upload, then per archive extract it unless its entries are already in place and
  // verify them, then install run.sh. Each check stops the script before the next step, and what
  // it saw comes back so the error names the file, as it would from separate calls.
  const expected: Record<string, string> = { [scriptRel]: scriptSha };
  for (const f of uploads) if (!early.done.has(f.remoteRel)) expected[f.remoteRel] = f.sha256;
  const wants = archives.map((a) => {
    const want: Record<string, string> = {};
    for (const [name, sha] of Object.entries(a.entries)) want[posix.join(a.into, name)] = sha;
    return want;
  });
  // run.sh.tmp is renamed into place; a run.sh sent to its place needs nothing; one kept gets its mode.
  const install =
    scriptRel === 'run.sh.tmp' ? 'mv -f -- run.sh.tmp run.sh' : sendScript ? '' : 'chmod 700 run.sh';
  const lines = [
    SHA_FN,
    `cd -- ${q(workdir)} || exit 1`,
    `got=$(${sha256Cmd(Object.keys(expected), big)})`,
    `if [ "$got" != ${q(sha256Lines(expected))} ]; then echo 'stage uploads'; printf '%s\\n' "$got"; exit 0; fi`,
    ...archives.flatMap((a, i) => {
      const extract = [
        `${untarCommand(a.remoteRel, a.into)} || { echo "stage extract ${i} $?"; exit 0; }`,
        `got=$(${sha256Cmd(Object.keys(wants[i]!), big)})`,
        `if [ "$got" != ${q(sha256Lines(wants[i]!))} ]; then echo 'stage entries ${i}'; printf '%s\\n' "$got"; exit 0; fi`,
      ];
      // A fresh work dir cannot hold the entries yet: no look before extracting.
      if (opts.fresh) return extract;
      return [
        `got=$(${sha256Cmd(Object.keys(wants[i]!), big)})`,
        `if [ "$got" != ${q(sha256Lines(wants[i]!))} ]; then`,
        ...extract.map((l) => `  ${l}`),
        'fi',
      ];
    }),
    ...(install ? [`${install} || { echo "stage install $?"; exit 0; }`] : []),
    "echo 'stage ok'",
  ];
  const r = await mustExec(t, lines.join('\n'), 'stage the work dir');
  const [head = '', ...rest] = r.stdout.split('\n');
  const answered = () => parseHashes(rest.join('\n'));
  const [what, index, code] = head.split(' ').slice(1);
  const detail = r.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 500);
  if (what === 'uploads') verifyHashes(expected, answered(), 'staged file');
  else if (what === 'extract') {
    const rel = archives[Number(index)]?.remoteRel;
    throw new TransportError(`could not extract ${rel} (exit ${code})${detail ? `: ${detail}` : ''}`);
  } else if (what === 'entries') {
    const a = archives[Number(index)]!;
    verifyHashes(wants[Number(index)]!, answered(), `entry of ${a.remoteRel}:`);
  } else if (what === 'install') {
    throw new TransportError(`could not install run.sh (exit ${index})${detail ? `: ${detail}` : ''}`);
  }
  if (what !== 'ok') throw new TransportError(`unexpected answer while staging: ${JSON.stringify(head)}`);
}

/**
 * `retrain_sha FILE...` prints `sha256sum`'s lines for the files that exist, in order. It hashes
 * with `openssl dgst` where the host has it (SHA extensions: ~3x coreutils' sha256sum, which a
 * gigabyte of inputs hashed twice on the host feels), checking each answer's shape, and with
 * sha256sum otherwise. Names are plain relative paths (checkRel), never starting with `-`. Used for
 * inputs of OPENSSL_FROM_BYTES or more; smaller ones take one sha256sum for all files.
 */
const SHA_FN = [
  'retrain_sha() {',
  '  if ! command -v openssl >/dev/null 2>&1; then sha256sum -- "$@" 2>/dev/null; return 0; fi',
  '  local f h',
  '  for f in "$@"; do',
  '    [ -f "$f" ] || continue',
  '    h=$(openssl dgst -sha256 -r "$f" 2>/dev/null); h=${h%% *}',
  '    case $h in "" | *[!0-9a-f]*) h=$(sha256sum -- "$f" 2>/dev/null); h=${h%% *} ;; esac',
  '    [ "${#h}" -eq 64 ] && printf \'%s  %s\\n\' "$h" "$f"',
  '  done',
  '  return 0',
  '}',
].join('\n');

/** Uploads in flight at once while staging. */
const UPLOAD_CONCURRENCY = 4;

/** Inputs of at least this many bytes are hashed on the host with `retrain_sha` (openssl). */
const OPENSSL_FROM_BYTES = 32 * 1024 * 1024;

/** The SHA-256 lines of the listed files (missing ones print nothing), never failing. */
function sha256Cmd(rels: string[], big: boolean): string {
  const list = rels.map(q).join(' ');
  return big ? `retrain_sha ${list}` : `sha256sum -- ${list} 2>/dev/null`;
}

/** Each file's size here (0 when it cannot be read: putFile then says why). */
async function localSizes(files: StageFile[]): Promise<number[]> {
  return Promise.all(
    files.map(async (f) =>
      f.data ? f.data.length : (await stat(f.localPath).catch(() => ({ size: 0 }))).size,
    ),
  );
}

/**
 * Host-side SHA-256 checks started in the background, one exec per file, each compared with what
 * was sent; `settled` waits for all and throws the first mismatch (ChecksumError naming the file)
 * or failure. `done` holds the files verified so far (or known good), which the final check skips.
 */
class EarlyChecks {
  readonly done = new Set<string>();
  private readonly pending: Promise<unknown>[] = [];
  private failure: unknown;

  constructor(
    private readonly t: Transport,
    private readonly workdir: string,
  ) {}

  known(rel: string): void {
    this.done.add(rel);
  }

  check(rel: string, sha256: string): void {
    const run = (async () => {
      const seen = await remoteHashes(this.t, this.workdir, [rel], [], true);
      verifyHashes({ [rel]: sha256 }, seen, 'staged file');
      this.done.add(rel);
    })().catch((err: unknown) => {
      this.failure ??= err;
    });
    this.pending.push(run);
  }

  async settled(): Promise<void> {
    await Promise.all(this.pending);
    if (this.failure !== undefined) throw this.failure;
  }
}

/** What `sha256Cmd` prints when every file has its expected hash (same order, no trailing newline). */
function sha256Lines(expected: Record<string, string>): string {
  return Object.entries(expected)
    .map(([rel, sha]) => `${sha}  ${rel}`)
    .join('\n');
}

function verifyHashes(expected: Record<string, string>, actual: Record<string, string>, what: string): void {
  for (const [rel, sha] of Object.entries(expected)) {
    if (actual[rel] === undefined) throw new ChecksumError(`${what} ${rel} is missing on the host`);
    if (actual[rel] !== sha) {
      throw new ChecksumError(`${what} ${rel} has sha256 ${actual[rel]} on the host, expected ${sha}`);
    }
  }
}

/** `{rel: sha256}` for the listed files that exist (after creating `mkdirs`, when given). */
async function remoteHashes(
  t: Transport,
  workdir: string,
  rels: string[],
  mkdirs: string[],
  big: boolean,
): Promise<Record<string, string>> {
  const mk = mkdirs.length ? `mkdir -p -- ${mkdirs.map(q).join(' ')} && ` : '';
  const cmd = `${SHA_FN}\nmkdir -p -- ${q(workdir)} && cd -- ${q(workdir)} && ${mk}{ ${sha256Cmd(rels, big)}; true; }`;
  return parseHashes((await mustExec(t, cmd, 'hash staged files')).stdout);
}

/** Creates `dirs` (relative) in the work dir, in one exec. */
async function mkdirs(t: Transport, workdir: string, dirs: string[]): Promise<void> {
  await mustExec(
    t,
    `cd -- ${q(workdir)} && mkdir -p -- ${dirs.map(q).join(' ')}`,
    'create dirs in the work dir',
  );
}

function parseHashes(stdout: string): Record<string, string> {
  try {
    return parseSha256Txt(stdout);
  } catch (err) {
    throw new TransportError(`unexpected sha256sum output from the host: ${(err as Error).message}`);
  }
}

function checkRel(rel: string): void {
  const parts = rel.split('/');
  if (posix.isAbsolute(rel) || parts.some((p) => !SAFE_SEGMENT_RE.test(p))) {
    throw new TransportError(`cannot stage ${JSON.stringify(rel)}: not a plain relative path`, {
      retryable: false,
    });
  }
}
