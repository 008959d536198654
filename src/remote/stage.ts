/**
 * Staging a work dir on the host: inputs/, recipe/, out/ and run.sh, verified by SHA-256.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { ChecksumError, TransportError } from '../errors.js';
import type { LoadedRecipe } from '../recipes/loader.js';
import { shellQuote as q } from '../recipes/template.js';
import { parseSha256Txt, sha256File, sha256Hex } from '../util/hash.js';
import { mustExec, SAFE_SEGMENT_RE } from './execUtil.js';
import { untarCommand } from './pack.js';
import type { Transport } from './transport.js';

export interface StageFile {
  localPath: string;
  /** Path relative to the work dir, e.g. `inputs/features.csv`; plain segments only. */
  remoteRel: string;
  sha256: string;
}

/**
 * A deterministic tar (src/remote/pack.ts) shipped as one file and extracted on the host into
 * `into`; each entry is verified there against `entries` after extraction.
 */
export interface StageArchive extends StageFile {
  /** Dir relative to the work dir the entries land in, e.g. `inputs`. */
  into: string;
  /** Entry name → SHA-256 of its content. */
  entries: Record<string, string>;
}

/** The recipe file and its shipped files as StageFiles under `recipe/`. */
export async function recipeStageFiles(recipe: LoadedRecipe): Promise<StageFile[]> {
  const own = await sha256File(recipe.file);
  return [
    { localPath: recipe.file, remoteRel: `recipe/${posix.basename(recipe.file)}`, sha256: own.sha256 },
    ...recipe.files.map((f) => ({ localPath: f.path, remoteRel: `recipe/${f.name}`, sha256: f.sha256 })),
  ];
}

/**
 * Prepares the work dir: creates inputs/, recipe/ and out/, uploads each file or archive whose
 * remote copy is missing or differs (a transport that resumes partial uploads resumes them),
 * verifies every upload's SHA-256 on the host in one `sha256sum` call (ChecksumError naming the
 * file on a mismatch), extracts each archive whose entries are not already in place and verifies
 * the entries, then installs run.sh with mode 0700 (by rename, so a shell already reading an
 * older run.sh is not disturbed). Idempotent: a second call with the same inputs sends nothing.
 */
export async function stageRun(
  t: Transport,
  opts: { workdir: string; files: StageFile[]; archives?: StageArchive[]; script: string },
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
  const before = await remoteHashes(t, workdir, allRels, [...dirs]);

  const tmp = await mkdtemp(join(tmpdir(), 'retrain-stage-'));
  try {
    for (const f of uploads) {
      if (before[f.remoteRel] !== f.sha256) await t.putFile(f.localPath, posix.join(workdir, f.remoteRel));
    }
    const scriptRel = before['run.sh'] === scriptSha ? 'run.sh' : 'run.sh.tmp';
    if (scriptRel === 'run.sh.tmp') {
      const local = join(tmp, 'run.sh');
      await writeFile(local, opts.script, { mode: 0o600 });
      await t.putFile(local, posix.join(workdir, 'run.sh.tmp'));
    }

    const expected: Record<string, string> = { [scriptRel]: scriptSha };
    for (const f of uploads) expected[f.remoteRel] = f.sha256;
    verifyHashes(expected, await remoteHashes(t, workdir, Object.keys(expected)), 'staged file');

    for (const a of archives) {
      const want: Record<string, string> = {};
      for (const [name, sha] of Object.entries(a.entries)) want[posix.join(a.into, name)] = sha;
      const have = await remoteHashes(t, workdir, Object.keys(want));
      if (Object.entries(want).some(([rel, sha]) => have[rel] !== sha)) {
        await mustExec(
          t,
          `cd -- ${q(workdir)} && ${untarCommand(a.remoteRel, a.into)}`,
          `extract ${a.remoteRel}`,
        );
        verifyHashes(want, await remoteHashes(t, workdir, Object.keys(want)), `entry of ${a.remoteRel}:`);
      }
    }

    const install =
      scriptRel === 'run.sh.tmp' ? 'chmod 700 run.sh.tmp && mv -f -- run.sh.tmp run.sh' : 'chmod 700 run.sh';
    await mustExec(t, `cd -- ${q(workdir)} && ${install}`, 'install run.sh');
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
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
  mkdirs: string[] = [],
): Promise<Record<string, string>> {
  const mk = mkdirs.length ? `mkdir -p -- ${mkdirs.map(q).join(' ')} && ` : '';
  const cmd = `mkdir -p -- ${q(workdir)} && cd -- ${q(workdir)} && ${mk}{ sha256sum -- ${rels.map(q).join(' ')} 2>/dev/null; true; }`;
  const r = await mustExec(t, cmd, 'hash staged files');
  try {
    return parseSha256Txt(r.stdout);
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
