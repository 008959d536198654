import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants as fsConstants,
  createReadStream,
  createWriteStream,
  fsync,
  open as openFd,
  read,
  readSync,
  statSync,
  write,
} from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { ChecksumError, RetrainError, StoreError } from '../errors.js';
import { hashingTap, readIfSmall, sha256File, sha256Hex } from '../util/hash.js';
import { IN_PLACE_MAX_BYTES, readSmallInPlace, yieldToLoop } from '../util/inPlaceFs.js';
import { parseStoredJson, TEMP_MARKER, validateKey, validatePrefix } from './keys.js';
import type { ArtifactStore, PutResult } from './store.js';

/**
 * An ArtifactStore on a local folder: key `a/b/c` is the file `<root>/a/b/c`.
 *
 * Guarantees:
 * - every key and prefix is validated (see storage/keys.ts) before the filesystem is touched;
 * - writes are atomic: data goes to a temp file in the destination folder, is synced to disk
 *   (O_DSYNC writes, or fsync), verified, and only then renamed over the key, so a reader sees the
 *   old object or the whole new one, never a partial or unverified one;
 * - `putFile`, `copy` and `getFile` stream (memory stays flat; a file of up to 4 MiB is read whole)
 *   and hash the bytes both while reading the source and again from the written file (a small one
 *   read back through the handle that wrote it); `putBytes` given the bytes' known hash holds the
 *   written file to it. On a mismatch (with each other or with `expectedSha256`) the temp file is
 *   removed, nothing is renamed into place, and ChecksumError names the key. An object previously
 *   stored under the key is left as it was;
 * - `list` never returns temp files of in-flight writes.
 *
 * Reads of small objects, stats and the read-back of a small write are done in place
 * (src/util/inPlaceFs.ts); every change (a temp file, a synced write, a rename, a folder) goes
 * through libuv's pool. Keep the store on a local disk: a network file system would stall the
 * worker's event loop on those reads.
 *
 * A key cannot be both an object and a prefix of other keys here (a file cannot be a folder); such a
 * put fails with StoreError.
 */
export class LocalStore implements ArtifactStore {
  readonly kind = 'local' as const;
  readonly root: string;
  /**
   * Folders this store made or is making: a symbol's dozen puts into one folder, four at a time,
   * make it once, not a dozen times. One removed behind our back is made again (the write that
   * missed it is redone).
   */
  private readonly folders = new Map<string, Promise<void>>();

  constructor(root: string) {
    this.root = resolve(root);
  }

  /** The absolute filesystem path of a key. */
  locate(key: string): string {
    return join(this.root, ...validateKey(key).split('/'));
  }

  async putFile(key: string, localPath: string, expectedSha256?: string): Promise<PutResult> {
    const dest = this.locate(key);
    const missing = () => new StoreError(`source file not found: ${localPath}`, { retryable: false });
    return this.writeAtomic(key, dest, (tmp) => streamCopy(localPath, tmp, missing, key), expectedSha256);
  }

  async putBytes(key: string, data: Buffer | string, expectedSha256?: string): Promise<PutResult> {
    const dest = this.locate(key);
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return this.writeAtomic(
      key,
      dest,
      async (tmp) => {
        const written = await writeSynced(tmp, buf);
        // A known hash is what the read-back is held to (writeAtomic): the bytes are not hashed twice.
        const sha256 = expectedSha256 === undefined ? sha256Hex(buf) : written.sha256;
        return { sha256, bytes: buf.length, written };
      },
      expectedSha256,
    );
  }

  /** Pretty-printed JSON (2 spaces, trailing newline). Throws StoreError for non-serialisable values. */
  async putJson(key: string, value: unknown): Promise<PutResult> {
    const text = JSON.stringify(value, null, 2);
    if (text === undefined) {
      throw new StoreError(`cannot store ${typeof value} as JSON at ${key}`, { retryable: false });
    }
    return this.putBytes(key, text + '\n');
  }

  async getBytes(key: string): Promise<Buffer> {
    const path = this.locate(key);
    try {
      const small = readSmallInPlace(path);
      if (!small) return await readFile(path);
      await yieldToLoop();
      return small;
    } catch (err) {
      throw fsError(err, key, 'read');
    }
  }

  /** Throws StoreError (not retryable) naming the key when the object is not valid JSON. */
  async getJson<T = unknown>(key: string): Promise<T> {
    return parseStoredJson<T>(key, await this.getBytes(key));
  }

  /**
   * Streams the object to `localPath` atomically (temp file + rename in the target folder, parents
   * created). With `expectedSha256`, a mismatch removes the temp file, leaves `localPath` untouched
   * and throws ChecksumError naming the key.
   */
  async getFile(key: string, localPath: string, expectedSha256?: string): Promise<void> {
    const src = this.locate(key);
    const dest = resolve(localPath);
    const tmp = tempPathFor(dest);
    try {
      await mkdir(dirname(dest), { recursive: true });
      const copied = await streamCopy(src, tmp, () => notFound(key), key);
      const { sha256 } = copied;
      const written = copied.written ?? (await sha256File(tmp));
      if (written.sha256 !== sha256) {
        throw new ChecksumError(
          `checksum mismatch downloading ${key}: read ${sha256}, wrote ${written.sha256}`,
        );
      }
      if (expectedSha256 !== undefined && sha256 !== expectedSha256.toLowerCase()) {
        throw new ChecksumError(`checksum mismatch for ${key}: expected ${expectedSha256}, got ${sha256}`);
      }
      await rename(tmp, dest);
    } catch (err) {
      throw err instanceof RetrainError ? err : fsError(err, key, `download to ${dest}`);
    } finally {
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  async exists(key: string): Promise<boolean> {
    const path = this.locate(key);
    let found;
    try {
      found = statSync(path, { throwIfNoEntry: false })?.isFile() ?? false;
    } catch (err) {
      if (!isCode(err, 'ENOTDIR')) throw fsError(err, key, 'stat');
      found = false;
    }
    await yieldToLoop();
    return found;
  }

  /**
   * Keys starting with `prefix` (plain string prefix, as in S3: `models/prod` matches
   * `models/production/...`), recursively, sorted by code unit. A missing folder gives [].
   */
  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash >= 0 ? prefix.slice(0, slash) : '';
    const out: string[] = [];
    await this.walk(dirKey, out);
    return out.filter((k) => k.startsWith(prefix)).sort(compareKeys);
  }

  /** Verified copy: the written object must hash like the source, otherwise ChecksumError. */
  async copy(fromKey: string, toKey: string): Promise<void> {
    const src = this.locate(fromKey);
    const dest = this.locate(toKey);
    await this.writeAtomic(toKey, dest, (tmp) => streamCopy(src, tmp, () => notFound(fromKey), toKey));
  }

  /** Idempotent: deleting a missing key is not an error. Empty folders are left in place. */
  async delete(key: string): Promise<void> {
    const path = this.locate(key);
    try {
      const st = await stat(path);
      if (!st.isFile()) return;
      await rm(path, { force: true });
    } catch (err) {
      if (isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR')) return;
      throw fsError(err, key, 'delete');
    }
  }

  /**
   * Creates the parent folder, lets `fill` write the temp file (returning the hash of the bytes it
   * wrote), re-hashes the temp file from disk, compares with `expectedSha256`, then renames. The
   * temp file is removed on every path that does not end in the rename.
   */
  private async writeAtomic(
    key: string,
    dest: string,
    fill: (tmp: string) => Promise<Filled>,
    expectedSha256?: string,
  ): Promise<PutResult> {
    const tmp = tempPathFor(dest);
    let renamed = false;
    try {
      await this.makeFolder(dirname(dest), key);
      let source: Filled;
      try {
        source = await fill(tmp);
      } catch (err) {
        // The folder was removed since this store made it: make it again, once.
        if (!(await this.folderLost(dirname(dest)))) throw err;
        await this.makeFolder(dirname(dest), key);
        source = await fill(tmp);
      }
      const written = source.written ?? (await sha256File(tmp));
      if (written.sha256 !== source.sha256 || written.bytes !== source.bytes) {
        throw new ChecksumError(
          `checksum mismatch writing ${key}: source ${source.sha256} (${source.bytes} B), stored ${written.sha256} (${written.bytes} B)`,
        );
      }
      if (expectedSha256 !== undefined && written.sha256 !== expectedSha256.toLowerCase()) {
        throw new ChecksumError(
          `checksum mismatch for ${key}: expected ${expectedSha256}, got ${written.sha256}`,
        );
      }
      try {
        await rename(tmp, dest);
        renamed = true;
      } catch (err) {
        throw fsError(err, key, 'write');
      }
      return { key, sha256: written.sha256, bytes: written.bytes };
    } catch (err) {
      if (err instanceof RetrainError) throw err;
      throw fsError(err, key, 'write');
    } finally {
      if (!renamed) await rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  private makeFolder(dir: string, key: string): Promise<void> {
    let made = this.folders.get(dir);
    if (!made) {
      if (this.folders.size >= MAX_FOLDERS_KNOWN) this.folders.clear();
      made = mkdir(dir, { recursive: true }).then(
        () => undefined,
        (err: unknown) => {
          this.folders.delete(dir);
          throw fsError(err, key, 'create the folder of');
        },
      );
      this.folders.set(dir, made);
    }
    return made;
  }

  /** A folder this store knew that is gone now (it is forgotten then). */
  private async folderLost(dir: string): Promise<boolean> {
    if (!this.folders.has(dir)) return false;
    const st = await stat(dir).catch(() => null);
    if (st?.isDirectory()) return false;
    this.folders.delete(dir);
    return true;
  }

  private async walk(dirKey: string, out: string[]): Promise<void> {
    const dirPath = dirKey === '' ? this.root : join(this.root, ...dirKey.split('/'));
    let entries;
    try {
      entries = await readdir(dirPath, { withFileTypes: true });
    } catch (err) {
      if (isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR')) return;
      throw fsError(err, dirKey, 'list');
    }
    for (const e of entries) {
      if (e.name.startsWith(TEMP_MARKER)) continue;
      const childKey = dirKey === '' ? e.name : `${dirKey}/${e.name}`;
      if (e.isDirectory()) await this.walk(childKey, out);
      else if (e.isFile()) out.push(childKey);
    }
  }
}

/** S3 orders keys by UTF-8 bytes; for the ASCII keys of our layout this equals code-unit order. */
function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** What a temp file was filled with; `written`: its bytes read back, when the filler did that. */
interface Filled {
  sha256: string;
  bytes: number;
  written?: { sha256: string; bytes: number };
}

/** Folders a LocalStore remembers as made (then it starts over): bounded memory for a long worker. */
const MAX_FOLDERS_KNOWN = 10_000;

/**
 * This process's temp names: a random part drawn once, then a counter. The file is created
 * exclusively, so the name needs only to differ from other writers' (a random draw per put cost a
 * getrandom call, ~20 µs on a small VM, a dozen times per symbol).
 */
const TEMP_PREFIX = `${TEMP_MARKER}${process.pid.toString(36)}${randomBytes(4).toString('hex')}-`;
let tempCount = 0;

function tempPathFor(dest: string): string {
  return join(dirname(dest), `${TEMP_PREFIX}${(tempCount++).toString(36)}-${basename(dest)}`);
}

/**
 * Streams `src` into the new file `tmp` (exclusive create), hashing the bytes on the way, and fsyncs
 * it. A missing source becomes `missing()`. The caller removes `tmp` on failure.
 */
async function streamCopy(src: string, tmp: string, missing: () => Error, key: string): Promise<Filled> {
  try {
    const small = await readIfSmall(src);
    if (small) {
      const written = await writeSynced(tmp, small);
      return { sha256: sha256Hex(small), bytes: small.length, written };
    }
  } catch (err) {
    if (isCode(err, 'ENOENT') || isCode(err, 'EISDIR') || isCode(err, 'ENOTDIR')) throw missing();
    throw fsError(err, key, 'write');
  }
  const { tap, result } = hashingTap();
  try {
    await pipeline(createReadStream(src), tap, createWriteStream(tmp, { flags: 'wx' }));
    const fh = await open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (isCode(err, 'ENOENT') || isCode(err, 'EISDIR') || isCode(err, 'ENOTDIR')) throw missing();
    throw fsError(err, key, 'write');
  }
  return result();
}

/**
 * A new file (never an existing one) whose writes reach the disk before they return (O_DSYNC: what
 * an fdatasync after each write does, the size included), where the platform has the flag: a
 * store put is then one file operation fewer than a write and an fsync. Elsewhere, null: fsync.
 */
const CREATE_SYNCED =
  fsConstants.O_DSYNC !== undefined
    ? fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_DSYNC
    : null;

// The put's own descriptor (not a FileHandle): its read-back and close are done in place.
const createFd = promisify(openFd);
const writeAt = promisify(write);
const readAt = promisify(read);
const syncFd = promisify(fsync);

/**
 * Writes a new file (never an existing one), synced to disk, and reads it back through the same
 * descriptor: the hash of what the file holds, without a second open. The read asks for one byte
 * more than was written, so a longer file shows in one read; a read short of what was written goes
 * on. The create and the writes go through the pool; a small read-back and the close are done in
 * place (src/util/inPlaceFs.ts).
 */
async function writeSynced(path: string, data: Buffer): Promise<{ sha256: string; bytes: number }> {
  const fd = await createFd(path, CREATE_SYNCED ?? 'wx+', 0o666);
  try {
    for (let done = 0; done < data.length;) {
      done += (await writeAt(fd, data, done, data.length - done, done)).bytesWritten;
    }
    // Nothing written, nothing synced by the flag: the empty file itself is.
    if (CREATE_SYNCED === null || data.length === 0) await syncFd(fd);
    const back = Buffer.allocUnsafe(data.length + 1);
    let bytes = 0;
    for (;;) {
      const bytesRead =
        data.length <= IN_PLACE_MAX_BYTES
          ? readSync(fd, back, bytes, back.length - bytes, bytes)
          : (await readAt(fd, back, bytes, back.length - bytes, bytes)).bytesRead;
      bytes += bytesRead;
      if (bytesRead === 0 || bytes >= data.length) break;
    }
    return { sha256: sha256Hex(back.subarray(0, bytes)), bytes };
  } finally {
    closeSync(fd);
  }
}

function notFound(key: string): StoreError {
  return new StoreError(`not found: ${key}`, { retryable: false });
}

/** Maps a filesystem error to StoreError: missing → not found (not retryable); else retryable. */
function fsError(err: unknown, key: string, what: string): RetrainError {
  if (err instanceof RetrainError) return err;
  if (isCode(err, 'ENOENT') || isCode(err, 'EISDIR') || isCode(err, 'ENOTDIR')) {
    if (what === 'read') return notFound(key);
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const retryable = !(
    code === 'EACCES' ||
    code === 'EPERM' ||
    code === 'EISDIR' ||
    code === 'ENOTDIR' ||
    code === 'EEXIST'
  );
  return new StoreError(`cannot ${what} ${key}: ${(err as Error)?.message ?? String(err)}`, {
    retryable,
    cause: err,
  });
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}
