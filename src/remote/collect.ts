/**
 * Bringing a run's outputs back, verified against the sha256.txt the run wrote.
 */
import { join, posix } from 'node:path';
import { ChecksumError, OutputContractError, RetrainError, TransportError } from '../errors.js';
import type { LoadedRecipe } from '../recipes/loader.js';
import { parseSha256Txt, sha256File } from '../util/hash.js';
import { shellQuote as q } from '../recipes/template.js';
import { checkName, mustExec, SAFE_SEGMENT_RE } from './execUtil.js';
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
  const outDir = posix.join(workdir, 'out');
  const shaPath = posix.join(outDir, 'sha256.txt');
  // Outputs are only read from the work dir's own out/: one the recipe replaced by a symlink would
  // lead every read below somewhere else on the host.
  const kind = await mustExec(
    t,
    `cd -- ${q(workdir)} && if [ -L out ]; then echo link; elif [ -d out ]; then echo dir; else echo none; fi`,
    'inspect out/',
  );
  if (kind.stdout.trim() !== 'dir') {
    throw new OutputContractError(
      kind.stdout.trim() === 'link'
        ? 'out/ was replaced by a symlink: outputs are only read from the work dir'
        : 'out/ is missing: the recipe removed its output dir',
    );
  }
  const st = await t.stat(shaPath);
  if (!st || st.isDirectory) {
    throw new OutputContractError('out/sha256.txt is missing: the recipe did not finish successfully');
  }
  if (st.size > MAX_SHA256_TXT_BYTES) throw new OutputContractError('out/sha256.txt is too large');
  let listed: Record<string, string>;
  try {
    listed = parseSha256Txt((await t.readRange(shaPath, 0, MAX_SHA256_TXT_BYTES)).toString('utf8'));
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

  const out: CollectedOutput[] = [];
  for (const name of wanted) {
    checkName(name);
    const local = join(localDir, name);
    await t.getFile(posix.join(outDir, name), local);
    const { sha256, bytes } = await sha256File(local);
    if (sha256 !== listed[name]) {
      throw new ChecksumError(`output ${name}: sha256 ${sha256} does not match sha256.txt (${listed[name]})`);
    }
    out.push({ name, sha256, bytes });
  }
  return out;
}

/**
 * Which of `rels` (paths relative to the work dir) are regular files reached without any symlink
 * (the file itself and its parent dir inside the work dir are checked). A recipe may plant a link
 * pointing anywhere on the host; nothing is ever read through one.
 */
export async function regularFiles(t: Transport, workdir: string, rels: string[]): Promise<string[]> {
  if (rels.length === 0) return [];
  const r = await t.exec(
    `cd -- ${q(workdir)} && for f in ${rels.map(q).join(' ')}; do ` +
      `d=\${f%/*}; [ "$d" = "$f" ] || [ ! -L "$d" ] || continue; ` +
      `[ -f "$f" ] && [ ! -L "$f" ] && printf '%s\\n' "$f"; done; true`,
    { timeoutMs: 30_000 },
  );
  if (r.code !== 0) throw new TransportError(`cannot list outputs in ${workdir}: exit ${r.code}`);
  const found = new Set(r.stdout.split('\n').filter(Boolean));
  return rels.filter((rel) => found.has(rel));
}
