/** The SFTP side of the ssh transport: promise wrappers and the read-only file calls. */
import { mkdir, rename, unlink } from 'node:fs/promises';
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

/** Downloads to a temp file beside `localPath` and renames it (creating the local parent dir). */
export async function getFile(conn: SshConnection, remotePath: string, localPath: string): Promise<void> {
  await mkdir(dirname(localPath), { recursive: true });
  await conn.withSftp('get', remotePath, async (s) => {
    const tmp = `${localPath}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
    try {
      await sftpCall<void>((cb) => s.fastGet(remotePath, tmp, { concurrency: 32 }, cb));
      await rename(tmp, localPath);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  });
}

/** Reads at most maxBytes from offset; empty past the end. TransportError when missing. */
export async function readRange(
  conn: SshConnection,
  remotePath: string,
  offset: number,
  maxBytes: number,
): Promise<Buffer> {
  return conn.withSftp('read', remotePath, async (s) => {
    const handle = await sftpCall<Buffer>((cb) => s.open(remotePath, 'r', cb));
    try {
      const st = await sftpCall<Stats>((cb) => s.fstat(handle, cb));
      const want = Math.max(0, Math.min(maxBytes, st.size - offset));
      if (want === 0) return Buffer.alloc(0);
      const buf = Buffer.alloc(want);
      let got = 0;
      while (got < want) {
        const n = await sftpCall<number>((cb) => s.read(handle, buf, got, want - got, offset + got, cb));
        if (!n) break;
        got += n;
      }
      return buf.subarray(0, got);
    } finally {
      await sftpCall<void>((cb) => s.close(handle, cb)).catch(() => undefined);
    }
  });
}

/** null when the path does not exist (symlinks are followed). */
export async function statRemote(conn: SshConnection, remotePath: string): Promise<RemoteStat | null> {
  return conn.withSftp('stat', remotePath, async (s) => {
    const st = await sftpStat(s, remotePath);
    if (!st) return null;
    return { size: st.size, mtimeMs: st.mtime * 1000, isDirectory: st.isDirectory() };
  });
}
