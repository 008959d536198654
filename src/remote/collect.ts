/**
 * Bringing a run's outputs back, verified against the sha256.txt the run wrote.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { ChecksumError, OutputContractError, RetrainError, TransportError } from '../errors.js';
import type { LoadedRecipe } from '../recipes/loader.js';
import { parseSha256Txt, readIfSmall, sha256File, sha256Hex, WHOLE_FILE_BYTES } from '../util/hash.js';
import { shellQuote as q } from '../recipes/template.js';
import { readAtInPlace, statInPlace, withFileInPlace, yieldToLoop } from '../util/inPlaceFs.js';
import { Limiter } from '../util/limiter.js';
import { settleAll } from '../util/settle.js';
import { checkName, SAFE_SEGMENT_RE } from './execUtil.js';
import type { Transport } from './transport.js';

/** sha256.txt larger than this is refused as malformed. */
const MAX_SHA256_TXT_BYTES = 1024 * 1024;

export interface CollectedOutput {
  name: string;
  sha256: string;
  bytes: number;
}

/**
 * Downloads the run's outputs into `localDir` and verifies them: out/sha256.txt must exist and
 * parse (OutputContractError), must list every required output (OutputContractError naming it);
 * required, listed optional and listed partial outputs are fetched and each local copy must match
 * its listed SHA-256 (ChecksumError naming it). Returns them sorted by name.
 */
export async function collectOutputs(
  t: Transport,
  workdir: string,
  localDir: string,
  recipe: LoadedRecipe,
): Promise<CollectedOutput[]> {
  return (await collectRun(t, workdir, localDir, recipe)).outputs;
}

/**
 * `collectOutputs`, also telling which of `regular` (work-dir-relative names such as `train.log`)
 * are regular files reached without a symlink, as `regularFiles` would, and fetching those into
 * `localDir` beside the outputs: the look at out/, that check and sha256.txt come back from one
 * exec (each exec or file request is a round trip to the host, 50-200 ms to a rented one), and
 * every file is then fetched at once. `contents`: the verified bytes of outputs small enough to
 * be read whole (what was hashed), at most `keepBytes` of them in all (memory stays bounded
 * whatever the outputs), so that the caller need not read those again. With `memoryOnly`, a
 * small file is read from the host straight into memory and lands in `localDir` only when it is
 * not handed back (in `contents`, or `extras` for the regular files, by their relative name).
 */
export async function collectRun(
  t: Transport,
  workdir: string,
  localDir: string,
  recipe: LoadedRecipe,
  regular: string[] = [],
  opts: CollectOptions = {},
): Promise<{
  outputs: CollectedOutput[];
  regular: string[];
  contents: Map<string, Buffer>;
  extras: Map<string, Buffer>;
}> {
  const keepBytes = opts.keepBytes ?? KEEP_BYTES;
  regular.forEach((rel) => checkName(posix.basename(rel)));
  const outDir = posix.join(workdir, 'out');
  // The local driver's host is this machine: the same look, taken here without starting a shell.
  const look = t.kind === 'local' ? await inspectHere(workdir, regular) : await inspect(t, workdir, regular);
  // Outputs are only read from the work dir's own out/: one the recipe replaced by a symlink would
  // lead every read below somewhere else on the host.
  if (look.out !== 'dir') {
    throw new OutputContractError(
      look.out === 'link'
        ? 'out/ was replaced by a symlink: outputs are only read from the work dir'
        : 'out/ is missing: the recipe removed its output dir',
    );
  }
  if (look.sha256Txt === undefined) {
    throw new OutputContractError('out/sha256.txt is missing: the recipe did not finish successfully');
  }
  if (look.sha256Txt.length > MAX_SHA256_TXT_BYTES)
    throw new OutputContractError('out/sha256.txt is too large');
  let listed: Record<string, string>;
  try {
    listed = parseSha256Txt(look.sha256Txt.toString('utf8'));
  } catch (err) {
    if (err instanceof RetrainError) throw err;
    throw new OutputContractError(`out/sha256.txt is malformed: ${(err as Error).message}`);
  }
  for (const name of Object.keys(listed)) {
    if (!SAFE_SEGMENT_RE.test(name)) {
      throw new OutputContractError(`out/sha256.txt lists an unsafe name ${JSON.stringify(name)}`);
    }
  }

  const { required, optional } = recipe.def.outputs;
  for (const name of required) {
    if (listed[name] === undefined) throw new OutputContractError(`required output ${name} is missing`);
  }
  const wanted = [...new Set([...required, ...optional, ...recipe.def.partial])]
    .filter((n) => listed[n] !== undefined)
    .sort();
  wanted.forEach(checkName);

  const limit = new Limiter(FETCH_CONCURRENCY);
  const contents = new Map<string, Buffer>();
  const extras = new Map<string, Buffer>();
  let kept = 0;
  const keep = (into: Map<string, Buffer>, name: string, data: Buffer): boolean => {
    if (kept + data.length > keepBytes) return false;
    kept += data.length;
    into.set(name, data);
    return true;
  };
  // The local dir is made when a file first lands there (getFile makes it for the files it copies).
  let made: Promise<unknown> | undefined;
  const spill = async (local: string, data: Buffer) => {
    await (made ??= mkdir(localDir, { recursive: true }));
    await writeFile(local, data);
  };
  /**
   * One file: with memoryOnly, a small one comes into memory and is kept in `into` (or written to
   * `local` past the bound); any other is copied to `local`, and read back when `readBack` (its
   * bytes kept within the bound too). The bytes, when it was read whole.
   */
  const fetchOne = async (
    remote: string,
    local: string,
    into: Map<string, Buffer>,
    key: string,
    readBack: boolean,
  ): Promise<Buffer | null> => {
    const direct = opts.memoryOnly ? await t.readWhole(remote, WHOLE_FILE_BYTES) : null;
    if (direct) {
      if (!keep(into, key, direct)) await spill(local, direct);
      return direct;
    }
    await t.getFile(remote, local);
    const whole = readBack ? await readIfSmall(local) : null;
    if (whole) keep(into, key, whole);
    return whole;
  };
  const extraFetches = look.regular.map((rel) =>
    limit.run(() =>
      fetchOne(posix.join(workdir, rel), join(localDir, posix.basename(rel)), extras, rel, false),
    ),
  );
  const outputs = settleAll(
    wanted.map((name) =>
      limit.run(async (): Promise<CollectedOutput> => {
        const local = join(localDir, name);
        const whole = await fetchOne(posix.join(outDir, name), local, contents, name, true);
        const { sha256, bytes } = whole
          ? { sha256: sha256Hex(whole), bytes: whole.length }
          : await sha256File(local);
        if (sha256 !== listed[name]) {
          throw new ChecksumError(
            `output ${name}: sha256 ${sha256} does not match sha256.txt (${listed[name]})`,
          );
        }
        return { name, sha256, bytes };
      }),
    ),
  );
  // Both finish before this returns, failed or not (the caller cleans the local dir up).
  const [got] = await settleAll<unknown>([outputs, settleAll(extraFetches)]);
  return { outputs: got as CollectedOutput[], regular: look.regular, contents, extras };
}

export interface CollectOptions {
  /** Most bytes of verified files handed back in memory, in all (KEEP_BYTES). */
  keepBytes?: number;
  /**
   * Files handed back in memory are not also written to `localDir` (the caller stores them from
   * there), and the regular files read whole are handed back in `extras`. Default: every file lands
   * in `localDir`.
   */
  memoryOnly?: boolean;
}

/** Most bytes of verified outputs `collectRun` hands back in memory. */
export const KEEP_BYTES = 16 * 1024 * 1024;

/** Files fetched at once (each a few round trips on its own). */
const FETCH_CONCURRENCY = 8;

/** What collectRun looks at before fetching anything. */
export interface OutLook {
  /** out/ is a `dir`, a `link` or `none` (missing or another kind of file). */
  out: string;
  /** Those of the asked `regular` that are regular files reached without a symlink. */
  regular: string[];
  /** out/sha256.txt's bytes (at most one past MAX_SHA256_TXT_BYTES); absent when there is none. */
  sha256Txt?: Buffer;
}

/**
 * One exec: what out/ is (dir, link or none), which of `regular` are regular files reached
 * without a symlink, and out/sha256.txt (followed like any read of it; absent when missing or a
 * directory), at most one byte past MAX_SHA256_TXT_BYTES so that a larger one is seen as such.
 */
export async function inspect(t: Transport, workdir: string, regular: string[]): Promise<OutLook> {
  const cmd = [
    `cd -- ${q(workdir)} || exit 1`,
    'if [ -L out ]; then echo link; elif [ -d out ]; then echo dir; else echo none; fi',
    regular.length ? regularFilesLoop(regular, 'regular ') : ':',
    // Only a plain out/ is read from (the answer above stops the caller otherwise).
    'f=out/sha256.txt',
    `if [ -d out ] && [ ! -L out ] && [ -e "$f" ] && [ ! -d "$f" ]; then echo sha256.txt; head -c ${MAX_SHA256_TXT_BYTES + 1} -- "$f" || exit 1; fi`,
  ].join('\n');
  const r = await t.exec(cmd, { timeoutMs: 60_000, maxOutputBytes: MAX_SHA256_TXT_BYTES + 64 * 1024 });
  if (r.code !== 0) {
    const detail = r.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 500);
    throw new TransportError(`could not inspect out/ (exit ${r.code})${detail ? `: ${detail}` : ''}`);
  }
  const lines = r.stdout.split('\n');
  const out = lines[0] ?? '';
  const found = new Set<string>();
  let i = 1;
  for (; i < lines.length && lines[i]!.startsWith('regular '); i++) found.add(lines[i]!.slice(8));
  const hasSha = lines[i] === 'sha256.txt';
  return {
    out,
    regular: regular.filter((rel) => found.has(rel)),
    ...(hasSha ? { sha256Txt: Buffer.from(lines.slice(i + 1).join('\n'), 'utf8') } : {}),
  };
}

/**
 * `inspect` for a work dir on this machine, answered with the same tests as the shell's (`-L`,
 * `-d`, `-e`, `-f` on the same paths) in place: a local symbol saves a shell and a `head` process.
 * Differs only where the shell would hang: an out/sha256.txt that is a pipe or a device is refused
 * here (OutputContractError) instead of read.
 */
export async function inspectHere(workdir: string, regular: string[]): Promise<OutLook> {
  const at = (rel: string) => posix.join(workdir, rel);
  if (!statInPlace(workdir)?.isDirectory()) {
    throw new TransportError(`could not inspect out/: work dir ${workdir} is missing`);
  }
  const outL = statInPlace(at('out'), { link: true });
  const outIsDir = !outL?.isSymbolicLink() && !!statInPlace(at('out'))?.isDirectory();
  const out = outL?.isSymbolicLink() ? 'link' : outIsDir ? 'dir' : 'none';
  const found = regular.filter((rel) => {
    const dir = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : undefined;
    if (dir !== undefined && statInPlace(at(dir), { link: true })?.isSymbolicLink()) return false;
    const st = statInPlace(at(rel), { link: true });
    return !!st && !st.isSymbolicLink() && st.isFile();
  });
  let sha256Txt: Buffer | undefined;
  const shaPath = at('out/sha256.txt');
  const sha = outIsDir ? statInPlace(shaPath) : undefined;
  if (sha && !sha.isDirectory()) {
    try {
      sha256Txt = withFileInPlace(shaPath, (fd, size) =>
        readAtInPlace(fd, 0, Math.min(size, MAX_SHA256_TXT_BYTES + 1)),
      );
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new TransportError(`could not inspect out/: reading out/sha256.txt failed (${code})`, {
        cause: err,
      });
    }
    if (sha256Txt === undefined) throw new OutputContractError('out/sha256.txt is not a regular file');
  }
  await yieldToLoop();
  return { out, regular: found, ...(sha256Txt ? { sha256Txt } : {}) };
}

/**
 * Which of `rels` (paths relative to the work dir) are regular files reached without any symlink
 * (the file itself and its parent dir inside the work dir are checked). A recipe may plant a link
 * pointing anywhere on the host; nothing is ever read through one.
 */
export async function regularFiles(t: Transport, workdir: string, rels: string[]): Promise<string[]> {
  if (rels.length === 0) return [];
  const r = await t.exec(`cd -- ${q(workdir)} && ${regularFilesLoop(rels, '')}; true`, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new TransportError(`cannot list outputs in ${workdir}: exit ${r.code}`);
  const found = new Set(r.stdout.split('\n').filter(Boolean));
  return rels.filter((rel) => found.has(rel));
}

/**
 * Prints `<prefix><rel>` for each of `rels` that is a regular file, reached without a symlink
 * (neither the file nor its parent dir is one), from the work dir.
 */
function regularFilesLoop(rels: string[], prefix: string): string {
  return (
    `for f in ${rels.map(q).join(' ')}; do d=\${f%/*}; [ "$d" = "$f" ] || [ ! -L "$d" ] || continue; ` +
    `[ -f "$f" ] && [ ! -L "$f" ] && printf ${q(`${prefix}%s\n`)} "$f"; done`
  );
}
