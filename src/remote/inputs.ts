/**
 * How a training's inputs travel to the host. Small files go in one deterministic tar (one upload
 * and one hash for many files, whatever the round-trip time); a file of DIRECT_FROM_BYTES or more
 * travels as itself, so its bytes are read once here, written once on the host (resumable by
 * putFile's `.part`) and read once there to verify: packing it would add a local copy, a remote
 * copy and an extraction, three times its size in disk writes. Where a file costs no round trip
 * (the local driver), nothing is packed: every input travels as itself.
 */
import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { InputError } from '../errors.js';
import { sha256File, sha256Hex } from '../util/hash.js';
import { packFiles } from './pack.js';
import type { StageArchive, StageFile } from './stage.js';

/** Inputs at least this large are staged as plain files rather than packed. */
export const DIRECT_FROM_BYTES = 8 * 1024 * 1024;

export interface InputFile {
  /** Name under the inputs dir, e.g. `features.csv`. */
  name: string;
  /** Local file to send, where `data` is not given. */
  path?: string;
  /**
   * The input's bytes, already in memory and small (a dataset read and verified, a JSON file just
   * made): packed as they are, never written here first. Always packed, whatever its size.
   */
  data?: Buffer;
  /** Its SHA-256 when already known (e.g. the dataset's, verified on download); hashed otherwise. */
  sha256?: string;
}

export interface PlannedInputs {
  /** Large inputs, each staged as `<into>/<name>`. */
  files: StageFile[];
  /** The small inputs as one tar extracted into `into`; undefined when there are none. */
  archive?: StageArchive;
  /** Bytes of all inputs, as the host will hold them. */
  bytes: number;
  /** SHA-256 of every input by name. */
  entries: Record<string, string>;
}

/**
 * Splits `inputs` into plain files and one tar (only when some are small), held in memory when
 * small enough to be packed there, else written at `tarPath`.
 * InputError for a file that cannot be read; packFiles' errors for unsafe or duplicate names.
 */
export async function planInputs(
  inputs: InputFile[],
  opts: {
    tarPath: string;
    into: string;
    tarRel: string;
    directFromBytes?: number;
    /**
     * Pack the small inputs (default true). A tar saves round trips; without any (this machine),
     * it only costs: packing and hashing it here, a `tar` process and a second hashing there.
     */
    pack?: boolean;
  },
): Promise<PlannedInputs> {
  const directFrom = opts.directFromBytes ?? DIRECT_FROM_BYTES;
  const pack = opts.pack ?? true;
  const files: StageFile[] = [];
  const small: (InputFile & { sha256: string })[] = [];
  const entries: Record<string, string> = {};
  let bytes = 0;
  for (const f of inputs) {
    const size = f.data ? f.data.length : await sizeOf(f.path);
    const sha256 = f.sha256 ?? (f.data ? sha256Hex(f.data) : (await sha256File(f.path!)).sha256);
    entries[f.name] = sha256;
    bytes += size;
    if (pack && (f.data || size < directFrom)) {
      small.push({ ...f, sha256 });
      continue;
    }
    const remoteRel = posix.join(opts.into, f.name);
    files.push(f.data ? { data: f.data, remoteRel, sha256 } : { localPath: f.path!, remoteRel, sha256 });
  }
  if (small.length === 0) return { files, bytes, entries };
  // A tar packed in memory is sent from there: `tarPath` is written only for one streamed to disk.
  const packed = await packFiles(small, opts.tarPath, { hold: true });
  const archive: StageArchive = {
    ...(packed.data ? { data: packed.data } : { localPath: opts.tarPath }),
    remoteRel: opts.tarRel,
    sha256: packed.sha256,
    into: opts.into,
    entries: Object.fromEntries(small.map((f) => [f.name, f.sha256])),
  };
  return { files, archive, bytes, entries };
}

async function sizeOf(path: string | undefined): Promise<number> {
  if (path === undefined) throw new InputError('an input has neither a path nor data');
  try {
    return (await stat(path)).size;
  } catch (err) {
    throw new InputError(`cannot stage ${path}: ${(err as NodeJS.ErrnoException).code}`, { cause: err });
  }
}
