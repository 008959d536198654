/**
 * The ssh/vast drivers' Transport, over one ssh2 connection (multiplexed channels, one SFTP
 * session). Semantics match LocalTransport: exec never rejects for a non-zero exit, output is
 * bounded, a timeout or an abort kills the command's whole process group on the host.
 *
 * The parts, under ssh/: `connection.ts` (dial, pinned host key, drops and reconnects),
 * `exec.ts` (the exec protocol: secrets only on stdin, the pid for killing), `sftp.ts` (reads and
 * stats), `upload.ts` (resumable puts), `errors.ts` (every error classified: retryable or not).
 *
 * The connection drops and comes back: a call made after a drop reconnects (same pinned host key,
 * backoff, `connectRetries`); calls in flight at the drop fail with a retryable TransportError
 * (idempotent file calls, and an exec whose channel never opened, are retried once on a fresh
 * connection). A run started with `setsid` inside an exec is in another session and survives.
 * Commands go through one command agent per connection when it starts (ssh/agent.ts), else as plain
 * execs (ssh/exec.ts).
 */
import { TransportError } from '../errors.js';
import { shellQuote as q } from '../recipes/template.js';
import { SshConnection, type SshConnectOptions } from './ssh/connection.js';
import { oneLine } from './ssh/errors.js';
import { sshExec } from './ssh/exec.js';
import { getFile, readRange, statRemote } from './ssh/sftp.js';
import { putFile, type PutStats } from './ssh/upload.js';
import { AgentFiles } from './ssh/agentFiles.js';
import type { ExecOptions, ExecResult, RemoteStat, Transport } from './transport.js';

export type { PutStats, SshConnectOptions };

export class SshTransport implements Transport {
  readonly kind = 'ssh' as const;
  /** `user@host:port`, for messages. */
  readonly label: string;
  /** What the last successful putFile did (for tests and progress logs). */
  lastPutStats: PutStats | undefined;
  /** What the recent uploads sent, by remote path (uploads run side by side while staging). */
  readonly putStats = new Map<string, PutStats>();
  private readonly connection: SshConnection;
  private readonly agentFiles: AgentFiles;

  private constructor(opts: SshConnectOptions) {
    this.connection = new SshConnection(opts);
    this.label = this.connection.label;
    this.agentFiles = new AgentFiles(this.connection);
  }

  /**
   * Connects (retrying retryable failures with backoff). TransportError: retryable for network
   * trouble, not retryable for a refused key, a changed host key or an unusable private key.
   */
  static async connect(opts: SshConnectOptions): Promise<SshTransport> {
    const t = new SshTransport(opts);
    await t.connection.conn();
    return t;
  }

  /** How many connections were established (1 after connect; +1 per reconnect). */
  get connectCount(): number {
    return this.connection.connectCount;
  }

  /** Connections re-established after a drop. */
  get reconnects(): number {
    return Math.max(0, this.connectCount - 1);
  }

  /** Command agents started (one per connection while each lives; 0 when they are off or failed). */
  get agentStarts(): number {
    return this.connection.agentStarts;
  }

  /** The pid on the host of the current connection's command agent, when one runs. */
  agentPid(): Promise<number | undefined> {
    return this.connection.agentPid();
  }

  /** Whether a connection is up right now (a later call reconnects when not). */
  get connected(): boolean {
    return this.connection.connected;
  }

  /** See ssh/exec.ts. */
  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return sshExec(this.connection, command, opts);
  }

  /** Resumable upload through `<remote>.part` (see ssh/upload.ts); `lastPutStats` tells what was sent. */
  async putFile(localPath: string, remotePath: string): Promise<void> {
    this.recordPut(remotePath, await putFile(this.connection, localPath, remotePath));
  }

  /**
   * Bytes from memory, through `<remote>.part` and a rename (nothing to resume: they are all here).
   * Puts asked together go to the command agent as one request (ssh/agentFiles.ts).
   */
  async putData(data: Buffer, remotePath: string, mode = 0o644): Promise<void> {
    this.recordPut(remotePath, await this.agentFiles.write(data, remotePath, mode));
  }

  private recordPut(remotePath: string, stats: PutStats): void {
    this.lastPutStats = stats;
    this.putStats.delete(remotePath);
    this.putStats.set(remotePath, stats);
    // A pooled connection lives for many symbols: keep the recent ones only.
    if (this.putStats.size > 64) this.putStats.delete(this.putStats.keys().next().value!);
  }

  getFile(remotePath: string, localPath: string): Promise<void> {
    return getFile(this.connection, remotePath, localPath);
  }

  readWhole(remotePath: string, maxBytes: number): Promise<Buffer | null> {
    // Reads asked together go to the command agent as one request (ssh/agentFiles.ts).
    return this.agentFiles.read(remotePath, maxBytes);
  }

  readRange(remotePath: string, offset: number, maxBytes: number): Promise<Buffer> {
    return readRange(this.connection, remotePath, offset, maxBytes);
  }

  stat(remotePath: string): Promise<RemoteStat | null> {
    return statRemote(this.connection, remotePath);
  }

  async mkdirp(remotePath: string): Promise<void> {
    const r = await this.exec(`mkdir -p -- ${q(remotePath)}`, { timeoutMs: 60_000 });
    if (r.code !== 0) {
      throw new TransportError(
        `ssh mkdir failed for ${remotePath}: ${oneLine(r.stderr) || `exit ${r.code}`}`,
      );
    }
  }

  /** Ends the connection; later calls fail (not retryable). Idempotent. */
  close(): Promise<void> {
    return this.connection.close();
  }
}
