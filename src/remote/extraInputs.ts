/**
 * A recipe's `inputs:`: store prefixes copied into the work dir before the training. Each object
 * is downloaded, hashed here (and checked against the prefix's own sha256.txt when it has one),
 * and staged with that SHA-256, so the host verifies every byte it received.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { InputError, RetrainError } from '../errors.js';
import type { RecipeInput } from '../recipes/schema.js';
import type { ArtifactStore } from '../storage/store.js';
import { parseSha256Txt, sha256File } from '../util/hash.js';
import { SAFE_SEGMENT_RE } from './execUtil.js';
import type { StageFile } from './stage.js';

/** More objects than this under one prefix is taken for a mistake (a prefix too wide). */
export const MAX_INPUT_OBJECTS = 10_000;

export interface FetchedInputs {
  files: StageFile[];
  /** `<to>/<rel>` → SHA-256, for the log and the attempt's record. */
  entries: Record<string, string>;
  bytes: number;
}

/** `hyperparams/{{symbol}}/` with the symbol and date filled in. */
export function renderPrefix(from: string, job: { symbol: string; date: string }): string {
  return from.replace(/\{\{symbol\}\}/g, job.symbol).replace(/\{\{date\}\}/g, job.date);
}

/**
 * Downloads every object under each input's prefix into `localDir` and returns them as files to
 * stage at `<to>/<path under the prefix>`. InputError for a prefix with nothing under it, an
 * object name that is not plain segments, or too many objects; ChecksumError (from the store)
 * when an object differs from the prefix's sha256.txt.
 */
export async function fetchExtraInputs(
  store: ArtifactStore,
  inputs: RecipeInput[],
  job: { symbol: string; date: string },
  localDir: string,
): Promise<FetchedInputs> {
  const out: FetchedInputs = { files: [], entries: {}, bytes: 0 };
  for (const input of inputs) {
    const prefix = renderPrefix(input.from, job);
    const keys = (await store.list(prefix)).filter((k) => k.startsWith(prefix) && !k.endsWith('/')).sort();
    if (keys.length === 0) throw new InputError(`inputs: nothing in the store under ${prefix}`);
    if (keys.length > MAX_INPUT_OBJECTS)
      throw new InputError(`inputs: ${keys.length} objects under ${prefix} (at most ${MAX_INPUT_OBJECTS})`);
    const listedKey = `${prefix}sha256.txt`;
    let listed: Record<string, string> = {};
    if (keys.includes(listedKey)) {
      try {
        listed = parseSha256Txt((await store.getBytes(listedKey)).toString('utf8'));
      } catch (err) {
        if (err instanceof RetrainError) throw err;
        throw new InputError(`inputs: ${listedKey} is malformed (${(err as Error).message})`);
      }
    }
    for (const key of keys) {
      const rel = key.slice(prefix.length);
      if (!rel.split('/').every((seg) => SAFE_SEGMENT_RE.test(seg))) {
        throw new InputError(`inputs: object ${key} is not a plain relative path; rename it`);
      }
      const local = join(localDir, input.to, rel);
      await mkdir(dirname(local), { recursive: true });
      await store.getFile(key, local, listed[rel]);
      const { sha256, bytes } = await sha256File(local);
      const remoteRel = posix.join(input.to, rel);
      out.files.push({ localPath: local, remoteRel, sha256 });
      out.entries[remoteRel] = sha256;
      out.bytes += bytes;
    }
  }
  return out;
}
