/**
 * The local driver's Transport: commands run as `bash -c` child processes (started by the
 * process-wide Spawner helper, which spares this process a fork per command), files move with
 * node:fs (small reads in place: src/util/inPlaceFs.ts). Each exec runs in a process group of its
 * own, so a timeout or an abort kills the whole command tree; a run started inside it with
 * `setsid ... &` is in another session and survives both the exec and the Node process.
 */
import { statSync } from 'node:fs';
import { copyFile, mkdir, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:os';
import { dirname } from 'node:path';
import { CancelledError, TransportError } from '../errors.js';
import {
  ensureDir,
  IN_PLACE_MAX_BYTES,
  readAtInPlace,
  withFileInPlace,
  writeAndClose,
  yieldToLoop,
} from '../util/inPlaceFs.js';
import { Spawner } from './spawner.js';
import type { ExecOptions, ExecResult, RemoteStat, Transport } from './transport.js';

const DEFAULT_MAX_OUTPUT = 1024 * 1024;

export interface LocalTransportOptions {
  /**
   * Environment every command starts from (ExecOptions.env is added on top). Default:
   * process.env. Pass a filtered copy to keep orchestrator-only secrets away from recipes.
   */
  baseEnv?: NodeJS.ProcessEnv;
}

export class LocalTransport implements Transport {
  readonly kind = 'local' as const;
  private readonly baseEnv: NodeJS.ProcessEnv | undefined;
  private readonly spawner = Spawner.shared();

  constructor(opts: LocalTransportOptions = {}) {
    this.baseEnv = opts.baseEnv;
  }

  /**
   * Runs `bash -c command`. Resolves with the exit code (128+n for a signal) and at most
   * maxOutputBytes of stdout and of stderr. Rejects with TransportError when bash cannot start or
   * the timeout passes, CancelledError when the signal aborts (the command tree is killed then).
   */
  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    if (opts.signal?.aborted) return Promise.reject(new CancelledError('command cancelled before start'));
    const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
    return new Promise<ExecResult>((resolve, reject) => {
      let failure: Error | undefined;
      let kill = () => {};
      const fail = (err: Error) => {
        if (failure) return;
        failure = err;
        kill();
      };
      const timer =
        opts.timeoutMs !== undefined
          ? setTimeout(
              () => fail(new TransportError(`local command timed out after ${opts.timeoutMs} ms`)),
              opts.timeoutMs,
            )
          : undefined;
      const onAbort = () => fail(new CancelledError('command cancelled'));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => {
        if (timer) clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };

      kill = this.spawner.run(command, { ...(this.baseEnv ?? process.env), ...opts.env }, max, {
        onError: (err) => {
          done();
          reject(failure ?? err);
        },
        onExit: (code, signal, out, err) => {
          done();
          if (failure) return reject(failure);
          const exit = code ?? 128 + signalNumber(signal);
          resolve({ code: exit, stdout: out.toString('utf8'), stderr: err.toString('utf8') });
        },
      });
    });
  }

  /** Copies atomically (temp file + rename); the remote parent dir must exist. */
  async putFile(localPath: string, remotePath: string): Promise<void> {
    await atomicCopy(localPath, remotePath, 'put');
  }

  /** Copies atomically (temp file + rename), creating the local parent dir when it is missing. */
  async getFile(remotePath: string, localPath: string): Promise<void> {
    // The dir is usually there (a symbol's outputs land in one): made only when the copy misses it.
    try {
      await atomicCopy(remotePath, localPath, 'get');
    } catch (err) {
      const parent = dirname(localPath);
      if (!isCode((err as TransportError).cause, 'ENOENT')) throw err;
      if ((await stat(parent).catch(() => null))?.isDirectory()) throw err;
      await mkdir(parent, { recursive: true });
      await atomicCopy(remotePath, localPath, 'get');
    }
  }

  /** Writes through a temp file beside it and a rename; the remote parent dir must exist. */
  async putData(data: Buffer, remotePath: string, mode = 0o644): Promise<void> {
    const tmp = tempBeside(remotePath);
    try {
      await writeAndClose(tmp, data, 'wx', mode);
      await rename(tmp, remotePath);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw ioError('put', remotePath, err);
    }
  }

  /** The whole file when it holds at most maxBytes, else null. TransportError when missing. */
  async readWhole(remotePath: string, maxBytes: number): Promise<Buffer | null> {
    // One read of the size it had; a file still growing is cut there, as a copy would be.
    const small = inPlace(remotePath, (fd, size) =>
      size > maxBytes ? null : size <= IN_PLACE_MAX_BYTES ? readAtInPlace(fd, 0, size) : undefined,
    );
    if (small !== undefined) return yieldToLoop().then(() => small);
    return readOpen(remotePath, async (fh, size) => {
      const buf = Buffer.allocUnsafe(size);
      const { bytesRead } = await fh.read(buf, 0, size, 0);
      return buf.subarray(0, bytesRead);
    });
  }

  /** Reads at most maxBytes from offset; empty past the end. TransportError when missing. */
  async readRange(remotePath: string, offset: number, maxBytes: number): Promise<Buffer> {
    const want = (size: number) => Math.max(0, Math.min(maxBytes, size - offset));
    const small = inPlace(remotePath, (fd, size) => {
      const n = want(size);
      return n <= IN_PLACE_MAX_BYTES ? readAtInPlace(fd, offset, n) : undefined;
    });
    if (small !== undefined) return yieldToLoop().then(() => small);
    return readOpen(remotePath, async (fh, size) => {
      const buf = Buffer.alloc(want(size));
      const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
      return buf.subarray(0, bytesRead);
    });
  }

  /** null when the path does not exist. */
  async stat(remotePath: string): Promise<RemoteStat | null> {
    let st;
    try {
      st = statSync(remotePath, { throwIfNoEntry: false });
    } catch (err) {
      throw ioError('stat', remotePath, err);
    }
    await yieldToLoop();
    return st ? { size: st.size, mtimeMs: st.mtimeMs, isDirectory: st.isDirectory() } : null;
  }

  async mkdirp(remotePath: string): Promise<void> {
    try {
      await ensureDir(remotePath);
    } catch (err) {
      throw ioError('mkdir', remotePath, err);
    }
  }

  async close(): Promise<void> {}
}

/**
 * A read of this machine's file done in place (src/util/inPlaceFs.ts): what `use` returns, or
 * undefined when the part is too large for that or the path is not a regular file (then the pool
 * reads it, or reports why not). TransportError on failure.
 */
function inPlace<T>(path: string, use: (fd: number, size: number) => T): T | undefined {
  try {
    return withFileInPlace(path, use);
  } catch (err) {
    throw ioError('read', path, err);
  }
}

/** Opens `path` for reading and hands `read` the handle and the size; TransportError on failure. */
async function readOpen<T>(path: string, read: (fh: FileHandle, size: number) => Promise<T>): Promise<T> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw ioError('read', path, err);
  }
  try {
    return await read(fh, (await fh.stat()).size);
  } catch (err) {
    throw ioError('read', path, err);
  } finally {
    await fh.close();
  }
}

function tempBeside(path: string): string {
  return `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

async function atomicCopy(from: string, to: string, what: string): Promise<void> {
  const tmp = tempBeside(to);
  try {
    await copyFile(from, tmp);
    await rename(tmp, to);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw ioError(what, `${from} -> ${to}`, err);
  }
}

function ioError(op: string, path: string, err: unknown): TransportError {
  const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
  return new TransportError(`local ${op} failed for ${path}: ${code}`, { cause: err });
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal ? (constants.signals[signal] ?? 0) : 0;
}
