/**
 * putFile over ssh: into `<remote>.part`, then renamed into place. A `.part` left by an earlier
 * attempt whose bytes are a prefix of the local file (checked by SHA-256 on the host) is kept and
 * only the rest is sent. Small files go through SFTP writes (many in flight), big ones stream
 * through `cat` on one exec channel.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { SFTPWrapper, Stats } from 'ssh2';
import { ConnectionLostError, TransportError } from '../../errors.js';
import { shellQuote as q } from '../../recipes/template.js';
import type { SshConnection } from './connection.js';
import { localReadError, oneLine } from './errors.js';
import { sshExec } from './exec.js';
import { sftpCall, sftpStat } from './sftp.js';

/**
 * Bytes per SFTP write request and how many are in flight at once while uploading a small file
 * (1 MiB). Larger requests (128 or 256 KiB, fewer in flight) were slower to a loopback sshd.
 */
const PUT_CHUNK = 32 * 1024;
const PUT_DEPTH = 32;
/** Uploads of at least this many bytes stream through `cat` on the host (see streamUp). */
const STREAM_FROM_BYTES = 4 * 1024 * 1024;
/** Smaller uploads never look for a partial copy to resume (opening with `w` truncates one). */
const RESUME_FROM_BYTES = 256 * 1024;
const STREAM_READ = 1024 * 1024;

export interface PutStats {
  /** Bytes sent over the wire by the last putFile. */
  sentBytes: number;
  /** Bytes of an earlier `.part` upload that were verified and kept (0 when starting over). */
  resumedFrom: number;
  totalBytes: number;
}

/** Uploads `localPath` to `remotePath` (whose parent dir must exist); what was sent. */
export async function putFile(conn: SshConnection, localPath: string, remotePath: string): Promise<PutStats> {
  let local;
  try {
    local = await stat(localPath);
  } catch (err) {
    throw localReadError(localPath, err as NodeJS.ErrnoException);
  }
  const size = local.size;
  const mode = local.mode & 0o777;
  const part = `${remotePath}.part`;
  return conn.withSftp('put', remotePath, async (s) => {
    let from = 0;
    // Resuming pays off for big files only; a small one is sent again, a round trip sooner.
    const existing = size >= RESUME_FROM_BYTES ? await sftpStat(s, part) : null;
    if (existing && !existing.isDirectory() && existing.size > 0 && existing.size <= size) {
      const [remote, mine] = await Promise.all([
        remotePrefixSha(conn, part, existing.size),
        localPrefixSha(localPath, existing.size),
      ]);
      if (remote === mine) from = existing.size;
    }
    let sent: number;
    let now: Stats | null;
    if (size - from >= STREAM_FROM_BYTES) {
      sent = await streamUp(conn, localPath, part, from, size, mode);
      now = await sftpStat(s, part);
    } else {
      const fh = await open(localPath, 'r');
      try {
        ({ sent, now } = await writePart(s, part, from > 0 ? 'r+' : 'w', mode, from, size, () => {
          // One buffer per writer, no bigger than the bytes need: a small file takes one request
          // and its own size, not PUT_DEPTH buffers of PUT_CHUNK (1 MiB of garbage per put).
          const buf = Buffer.allocUnsafe(Math.min(PUT_CHUNK, size - from));
          return async (at, len) => {
            const { bytesRead } = await fh.read(buf, 0, len, at);
            if (bytesRead !== len) throw new TransportError(`${localPath} changed while it was uploaded`);
            return [buf, 0];
          };
        }));
      } finally {
        await fh.close();
      }
    }
    await installPart(conn, s, part, remotePath, size, now);
    return { sentBytes: sent, resumedFrom: from, totalBytes: size };
  });
}

/**
 * Uploads bytes held in memory to `remotePath` (whose parent dir must exist) through
 * `<remote>.part` and a rename, with `mode`: SFTP writes straight from the buffer, no local file.
 */
export async function putData(
  conn: SshConnection,
  data: Buffer,
  remotePath: string,
  mode: number,
): Promise<PutStats> {
  const part = `${remotePath}.part`;
  const size = data.length;
  return conn.withSftp('put', remotePath, async (s) => {
    const { sent, now } = await writePart(s, part, 'w', mode, 0, size, () => async (at) => [data, at]);
    await installPart(conn, s, part, remotePath, size, now);
    return { sentBytes: sent, resumedFrom: 0, totalBytes: size };
  });
}

/** Where a writer's next request takes its bytes from: a buffer and the offset in it. */
type ChunkSource = (at: number, len: number) => Promise<[Buffer, number]>;

/**
 * Writes bytes [from, size) into `part` (opened with `flags` and `mode`) at the same offsets,
 * PUT_DEPTH requests in flight, each writer taking its bytes from a source of its own. Every write
 * was answered, so the size is final before the close: the stat goes out with it, one round trip
 * for both. What was sent, and the part's stat.
 */
async function writePart(
  s: SFTPWrapper,
  part: string,
  flags: 'w' | 'r+',
  mode: number,
  from: number,
  size: number,
  source: () => ChunkSource,
): Promise<{ sent: number; now: Stats | null }> {
  const handle = await sftpCall<Buffer>((cb) => s.open(part, flags, { mode }, cb));
  let next = from;
  let sent = 0;
  let failed = false;
  const worker = async () => {
    const chunkAt = source();
    while (!failed && next < size) {
      const at = next;
      const len = Math.min(PUT_CHUNK, size - at);
      next += len;
      const [buf, offset] = await chunkAt(at, len);
      await sftpCall<void>((cb) => s.write(handle, buf, offset, len, at, cb));
      sent += len;
    }
  };
  try {
    await Promise.all(
      Array.from({ length: Math.min(PUT_DEPTH, Math.ceil((size - from) / PUT_CHUNK)) }, () =>
        worker().catch((err: unknown) => {
          failed = true;
          throw err;
        }),
      ),
    );
  } catch (err) {
    await sftpCall<void>((cb) => s.close(handle, cb)).catch(() => undefined);
    throw err;
  }
  const [, now] = await Promise.all([
    sftpCall<void>((cb) => s.close(handle, cb)).catch(() => undefined),
    sftpStat(s, part),
  ]);
  return { sent, now };
}

/** Renames a complete `part` over `remotePath`; TransportError when it does not hold `size` bytes. */
async function installPart(
  conn: SshConnection,
  s: SFTPWrapper,
  part: string,
  remotePath: string,
  size: number,
  now: Stats | null,
): Promise<void> {
  if (!now || now.size !== size) {
    throw new TransportError(`uploaded ${part} has ${now?.size ?? 0} bytes, expected ${size}`);
  }
  await renameOver(conn, s, part, remotePath);
}

/**
 * Sends local bytes [from, size) to the end of `part` (created empty, with `mode`, when `from`
 * is 0) through one exec channel's stdin into `cat`: one stream, no per-request answers, which
 * keeps a big upload as fast as scp (SFTP's request/answer round trips cost ~25 % more time
 * here). Resolves with the bytes sent once `cat` exited 0.
 */
async function streamUp(
  conn: SshConnection,
  localPath: string,
  part: string,
  from: number,
  size: number,
  mode: number,
): Promise<number> {
  const script =
    `${from === 0 ? `: > ${q(part)} && ` : ''}chmod ${mode.toString(8)} -- ${q(part)} && ` +
    `exec cat >> ${q(part)}`;
  const { ch } = await conn.openExec(`exec bash --norc --noprofile -c ${q(script)}`);
  return new Promise<number>((resolve, reject) => {
    let sent = 0;
    let code: number | undefined;
    let stderr = '';
    let failure: Error | undefined;
    const src = createReadStream(localPath, { start: from, end: size - 1, highWaterMark: STREAM_READ });
    src.on('data', (b) => (sent += b.length));
    src.on('error', (err: NodeJS.ErrnoException) => {
      failure ??= new TransportError(`ssh put failed: cannot read ${localPath}: ${err.code ?? err.message}`);
      ch.close();
    });
    src.on('end', () => {
      if (sent !== size - from) failure ??= new TransportError(`${localPath} changed while it was uploaded`);
    });
    ch.on('data', () => undefined);
    ch.stderr.on('data', (b: Buffer) => {
      if (stderr.length < 2000) stderr += b.toString('utf8');
    });
    ch.on('exit', (c: number | null) => {
      code = c ?? undefined;
    });
    ch.on('close', () => {
      src.destroy();
      if (failure) return reject(failure);
      if (code === undefined) {
        return reject(new ConnectionLostError(`ssh connection to ${conn.label} was lost during put`));
      }
      if (code !== 0) {
        return reject(new TransportError(`ssh put failed for ${part}: ${oneLine(stderr) || `exit ${code}`}`));
      }
      resolve(sent);
    });
    src.pipe(ch);
  });
}

async function remotePrefixSha(
  conn: SshConnection,
  path: string,
  bytes: number,
): Promise<string | undefined> {
  const r = await sshExec(conn, `head -c ${bytes} -- ${q(path)} | sha256sum`, { timeoutMs: 600_000 });
  return r.code === 0 ? /^([0-9a-f]{64})/.exec(r.stdout)?.[1] : undefined;
}

async function localPrefixSha(path: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { start: 0, end: bytes - 1 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** SFTP's atomic rename over an existing file, or `mv -f` where the server lacks it. */
async function renameOver(conn: SshConnection, s: SFTPWrapper, from: string, to: string): Promise<void> {
  try {
    await sftpCall<void>((cb) => s.ext_openssh_rename(from, to, cb));
    return;
  } catch (err) {
    if (!conn.connected) throw err;
  }
  const r = await sshExec(conn, `mv -f -- ${q(from)} ${q(to)}`, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new TransportError(`ssh rename failed for ${from} -> ${to}: ${oneLine(r.stderr)}`);
}
