/**
 * A Transport runs commands and moves files on the host that trains. The local driver's transport
 * uses child processes and the filesystem; the ssh/vast drivers use ssh2. The recipe runner only
 * sees this interface, so the same workflow runs on both.
 */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /**
   * Extra environment for the command. Delivered without ever appearing on a command line
   * (secrets travel here).
   */
  env?: Record<string, string>;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Bytes of stdout/stderr kept (default 1 MiB each); the rest is dropped. */
  maxOutputBytes?: number;
}

export interface RemoteStat {
  size: number;
  mtimeMs: number;
  isDirectory: boolean;
}

export interface Transport {
  readonly kind: 'local' | 'ssh';
  /** Connections re-established after a drop (transports that can drop). */
  readonly reconnects?: number;
  /** Runs `command` with bash -c on the host. Never rejects for a non-zero exit: read `code`. */
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  putFile(localPath: string, remotePath: string): Promise<void>;
  getFile(remotePath: string, localPath: string): Promise<void>;
  /**
   * Writes `data` (bytes already in memory: nothing is written here first) to `remotePath`
   * atomically, through a temp file and a rename, with `mode` (default 0644); the parent dir must
   * exist.
   */
  putData(data: Buffer, remotePath: string, mode?: number): Promise<void>;
  /**
   * The whole file when it holds at most `maxBytes`; null for a larger one, and for one larger
   * than this transport reads in one go (getFile is the way for those). TransportError when missing.
   */
  readWhole(remotePath: string, maxBytes: number): Promise<Buffer | null>;
  /** Reads at most `maxBytes` from `offset` (log tailing). Empty buffer past the end. */
  readRange(remotePath: string, offset: number, maxBytes: number): Promise<Buffer>;
  stat(remotePath: string): Promise<RemoteStat | null>;
  mkdirp(remotePath: string): Promise<void>;
  close(): Promise<void>;
}
