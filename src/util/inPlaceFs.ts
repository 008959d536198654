/**
 * Reads of this machine's own files done in place (synchronously) instead of through libuv's
 * thread pool; changes to the file system stay in the pool.
 *
 * Why: on a small VM a round trip through the pool costs ~35 µs of CPU in thread wake-ups, while a
 * stat, an open of an existing file or a read of a few KiB from the page cache costs 2-8 µs, and a
 * symbol made dozens of them (bench/RESULTS.md §1f). A change (create, mkdir, write, rename,
 * unlink) is not done in place: what it costs depends on the file system (creating a file took
 * 20 µs to 800 µs of CPU on the same VM within a day) and may wait for the disk, and the event
 * loop must not wait on that. Reads are bounded by IN_PLACE_MAX_BYTES, and an async API that reads
 * in place yields to the event loop once before it answers (yieldToLoop). These are for the worker's
 * own home and the local driver's host (this machine), not for a file system that may be remote.
 */
import {
  closeSync,
  constants as fsConstants,
  fstatSync,
  lstatSync,
  open as openFd,
  openSync,
  readSync,
  statSync,
  write as writeFd,
  type Stats,
} from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { setImmediate as turn } from 'node:timers/promises';
import { promisify } from 'node:util';

/** The most bytes read in place: a copy of 1 MiB from the page cache is ~100 µs. */
export const IN_PLACE_MAX_BYTES = 1024 * 1024;

/** A regular file ignores O_NONBLOCK; a path swapped for a FIFO after the stat then cannot block. */
const OPEN_FLAGS =
  fsConstants.O_NONBLOCK !== undefined ? fsConstants.O_RDONLY | fsConstants.O_NONBLOCK : fsConstants.O_RDONLY;

/**
 * Opens a regular file in place and hands `use` its descriptor and size; the descriptor is closed
 * after. undefined when the path is not a regular file (a pipe, a directory, a device), which is
 * not opened here: read it through the pool, which waits on a pipe and reports a directory as
 * before. Throws the system error (ENOENT, EACCES, ...) as node:fs does.
 */
export function withFileInPlace<T>(path: string, use: (fd: number, size: number) => T): T | undefined {
  if (!statSync(path).isFile()) return undefined;
  const fd = openSync(path, OPEN_FLAGS);
  try {
    const st = fstatSync(fd);
    return st.isFile() ? use(fd, st.size) : undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * At most `length` bytes from `offset` (length at most IN_PLACE_MAX_BYTES). A file still growing is
 * cut at what was asked; one that shrank gives what is there.
 */
export function readAtInPlace(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, offset + got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/**
 * The whole file read in place when it is a regular file of at most IN_PLACE_MAX_BYTES, else null
 * (read it through the pool).
 */
export function readSmallInPlace(path: string): Buffer | null {
  const small = withFileInPlace(path, (fd, size) =>
    size <= IN_PLACE_MAX_BYTES ? readAtInPlace(fd, 0, size) : null,
  );
  return small ?? null;
}

/**
 * A stat (an lstat with `link`) done in place; undefined when the path cannot be stat'ed, whatever
 * the reason (missing, a file where a dir was expected, no permission), as a shell's `[ -e ]` sees it.
 */
export function statInPlace(path: string, opts: { link?: boolean } = {}): Stats | undefined {
  try {
    return (opts.link ? lstatSync : statSync)(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/**
 * Lets the event loop run once (timers, I/O callbacks) after work done in place. An async API whose
 * work is all done in place would otherwise never yield, and a caller's loop over it (a reader
 * polling the store while a publish is under way) would starve the rest of the process. ~5 µs.
 */
export function yieldToLoop(): Promise<void> {
  return turn();
}

const openInPool = promisify(openFd);
const writeInPool = promisify(writeFd);

/**
 * Writes `data` to `path` opened with `flags` ('wx' a new file, 'a' an append), the open and the
 * writes through the pool (they change the file system), the close in place: a close is no change
 * and costs a few µs against a pool round trip's ~35 (`fs.writeFile` and `appendFile` close through
 * the pool). Throws the system error (EEXIST, ENOENT, ...) as node:fs does; the file is closed on
 * every path.
 */
export async function writeAndClose(
  path: string,
  data: Buffer,
  flags: 'wx' | 'a',
  mode = 0o666,
): Promise<void> {
  const fd = await openInPool(path, flags, mode);
  try {
    for (let done = 0; done < data.length;) {
      done += (await writeInPool(fd, data, done, data.length - done, null)).bytesWritten;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Makes the directory (and its parents) unless it is there: asked in place, made in the pool. Most
 * calls find it there (a symbol's log folder, the local driver's root).
 */
export async function ensureDir(path: string): Promise<void> {
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) return yieldToLoop();
  await mkdir(path, { recursive: true });
}

/**
 * Removes a file or a tree. Whether there is one is asked in place: a symbol's staging dir is often
 * never made. What there is goes through the pool.
 */
export async function removeIfPresent(path: string): Promise<void> {
  if (!lstatSync(path, { throwIfNoEntry: false })) return yieldToLoop();
  await rm(path, { recursive: true, force: true });
}
