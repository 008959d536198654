/** The SFTP side of the ssh transport: promise wrappers and the read-only file calls. */
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SFTPWrapper, Stats } from 'ssh2';
import type { RemoteStat } from '../transport.js';
import type { SshConnection } from './connection.js';
import { SFTP_NO_SUCH_FILE } from './errors.js';

export function sftpCall<T>(fn: (cb: (err: Error | undefined | null, v: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    try {
      fn((err, v) => (err ? reject(err) : resolve(v)));
    } catch (err) {
      reject(err);
    }
  });
}

/** null when the path does not exist. */
export async function sftpStat(s: SFTPWrapper, path: string): Promise<Stats | null> {
  try {
    return await sftpCall<Stats>((cb) => s.stat(path, cb));
  } catch (err) {
    if ((err as { code?: unknown }).code === SFTP_NO_SUCH_FILE) return null;
    throw err;
  }
}

/** Files up to this size are fetched with a single read. */
export const SMALL_GET_BYTES = 256 * 1024; // = SCRATCH_BYTES: its read reuses a buffer

/** Downloads to a temp file beside `localPath` and renames it (creating the local parent dir). */
export async function getFile(conn: SshConnection, remotePath: string, localPath: string): Promise<void> {
  await mkdir(dirname(localPath), { recursive: true });
  await conn.withSftp('get', remotePath, async (s) => {
    const tmp = `${localPath}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
    try {
      // Most files fetched are small: one read answers them whole (two round trips). A bigger
      // one goes through fastGet's parallel reads.
      const head = await readOn(s, remotePath, 0, SMALL_GET_BYTES);
      if (head.length < SMALL_GET_BYTES) await writeFile(tmp, head);
      else await sftpCall<void>((cb) => s.fastGet(remotePath, tmp, { concurrency: 32 }, cb));
      await rename(tmp, localPath);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  });
}

/**
 * The whole file in one read when it holds at most `maxBytes` (and less than SMALL_GET_BYTES: a
 * bigger one goes through getFile's parallel reads), else null. Two round trips, as getFile's.
 */
export async function readWhole(
  conn: SshConnection,
  remotePath: string,
  maxBytes: number,
): Promise<Buffer | null> {
  const ask = Math.min(maxBytes, SMALL_GET_BYTES - 1) + 1;
  return conn.withSftp('get', remotePath, async (s) => {
    const head = await readOn(s, remotePath, 0, ask);
    return head.length < ask ? head : null;
  });
}

/**
 * Reads at most maxBytes from offset; empty past the end. TransportError when missing. Two round
 * trips for a small read (open, read): no fstat first, a short read below what every server
 * answers in one go (32 KiB) is the end of the file, and the handle closes in the background. A
 * follow reads the log this way at every poll.
 */
export async function readRange(
  conn: SshConnection,
  remotePath: string,
  offset: number,
  maxBytes: number,
): Promise<Buffer> {
  return conn.withSftp('read', remotePath, (s) => readOn(s, remotePath, offset, maxBytes));
}

async function readOn(s: SFTPWrapper, remotePath: string, offset: number, maxBytes: number): Promise<Buffer> {
  const handle = await sftpCall<Buffer>((cb) => s.open(remotePath, 'r', cb));
  let scratch: Buffer | undefined;
  try {
    if (maxBytes <= 0) return Buffer.alloc(0);
    const buf = takeScratch(maxBytes);
    scratch = buf;
    let got = 0;
    while (got < maxBytes) {
      const ask = maxBytes - got;
      const n = await sftpCall<number>((cb) => s.read(handle, buf, got, ask, offset + got, cb));
      if (!n) break;
      got += n;
      if (n < ask && n < MIN_SERVER_READ) break;
    }
    return Buffer.from(buf.subarray(0, got));
  } finally {
    if (scratch) giveScratch(scratch);
    try {
      s.close(handle, () => undefined);
    } catch {
      // the channel went away: so did the handle
    }
  }
}

/**
 * Read buffers of the usual size (a log chunk, a small file) are kept for the next read: each read
 * asks for up to 256 KiB before it knows the size, and a fresh buffer per poll and per file was
 * most of a symbol's garbage over ssh. The answer is always copied out.
 */
const SCRATCH_BYTES = 256 * 1024;
const scratchPool: Buffer[] = [];

function takeScratch(bytes: number): Buffer {
  if (bytes === SCRATCH_BYTES) return scratchPool.pop() ?? Buffer.allocUnsafe(SCRATCH_BYTES);
  return Buffer.allocUnsafe(bytes);
}

function giveScratch(buf: Buffer): void {
  if (buf.length === SCRATCH_BYTES && scratchPool.length < 8) scratchPool.push(buf);
}

/** What any SFTP server returns from one read when the file has it (the protocol's minimum). */
const MIN_SERVER_READ = 32 * 1024;

/** null when the path does not exist (symlinks are followed). */
export async function statRemote(conn: SshConnection, remotePath: string): Promise<RemoteStat | null> {
  return conn.withSftp('stat', remotePath, async (s) => {
    const st = await sftpStat(s, remotePath);
    if (!st) return null;
    return { size: st.size, mtimeMs: st.mtime * 1000, isDirectory: st.isDirectory() };
  });
}
