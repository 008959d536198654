/**
 * The ssh ComputeProvider: an existing host we do not own, reached over SSH with a private key
 * file and a pinned host key. Acquiring hands out a connection; releasing leaves the host alone.
 * Connections are reused: a lease's transport, once closed, goes back to the provider and serves the
 * next lease (one lease at a time per connection), so a run of many symbols on one host does not
 * pay an SSH handshake per symbol. Idle connections are closed after IDLE_CONNECTION_MS.
 */
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { CancelledError, ConfigError, TransportError } from '../errors.js';
import type { JobSpec } from '../jobspec/types.js';
import { HostKeyPins } from '../remote/ssh/hostKeys.js';
import { SshTransport } from '../remote/sshTransport.js';
import type { ExecOptions, ExecResult, RemoteStat, Transport } from '../remote/transport.js';
import type { AcquireContext, ComputeProvider, Lease, LeaseInfo } from './provider.js';

/** How long a connection no lease uses is kept for the next one. */
export const IDLE_CONNECTION_MS = 5000;

export interface SshProviderOptions {
  host: string;
  port: number;
  user: string;
  /** Private key file (never logged). */
  keyPath: string;
  /** Root of the work dirs on the host, absolute or `~/...` (resolved against the remote $HOME). */
  workRoot: string;
  /** JSON file of pinned host keys. */
  pinsFile: string;
  /** Passed to SshTransport.connect. */
  readyTimeoutMs?: number;
  connectRetries?: number;
  /** `ssh.commandAgent`: false runs each command in a session of its own. Default true. */
  commandAgent?: boolean;
}

/** The pin id of an SSH endpoint. */
export function pinIdFor(host: string, port: number): string {
  return `ssh:${host}:${port}`;
}

/**
 * Connects to the host a lease names (`info.host`, `info.port` (default 22), `info.user`
 * (default root)), pinning its host key under `ssh:<host>:<port>`. Reusable by other providers.
 */
export async function connectLease(
  info: LeaseInfo,
  privateKey: Buffer,
  pins: HostKeyPins,
  opts: { readyTimeoutMs?: number; connectRetries?: number; pinId?: string; commandAgent?: boolean } = {},
): Promise<SshTransport> {
  const port = info.port ?? 22;
  return SshTransport.connect({
    host: info.host,
    port,
    username: info.user ?? 'root',
    privateKey,
    pins,
    pinId: opts.pinId ?? pinIdFor(info.host, port),
    ...(opts.readyTimeoutMs !== undefined ? { readyTimeoutMs: opts.readyTimeoutMs } : {}),
    ...(opts.connectRetries !== undefined ? { connectRetries: opts.connectRetries } : {}),
    ...(opts.commandAgent === false ? { agent: false } : {}),
  });
}

/** Turns `~` / `~/x` into an absolute path under the remote $HOME; checks it is absolute. */
export async function resolveRemoteRoot(
  t: Pick<Transport, 'exec'> & { readonly label: string },
  workRoot: string,
): Promise<string> {
  let root = workRoot;
  if (root === '~' || root.startsWith('~/')) {
    const r = await t.exec('printf %s "$HOME"', { timeoutMs: 30_000 });
    const home = r.stdout.trim();
    if (r.code !== 0 || !home.startsWith('/')) {
      throw new TransportError(`cannot find the home directory on ${t.label}`);
    }
    root = posix.join(home, root.slice(1));
  }
  if (!posix.isAbsolute(root))
    throw new ConfigError(`ssh workRoot ${JSON.stringify(workRoot)} must be absolute or ~/...`);
  return posix.normalize(root);
}

export class SshProvider implements ComputeProvider {
  readonly driver = 'ssh' as const;
  private readonly pins: HostKeyPins;
  private key: Buffer | undefined;
  /** Connections no lease holds now, newest last. */
  private readonly idle: { t: SshTransport; timer: NodeJS.Timeout }[] = [];
  /** The resolved work root, once it was created on the host. */
  private root: string | undefined;
  private closed = false;

  constructor(private readonly opts: SshProviderOptions) {
    if (!opts.host || !Number.isInteger(opts.port) || opts.port <= 0 || opts.port > 65535 || !opts.user) {
      throw new ConfigError('ssh compute needs host, port (1-65535) and user');
    }
    this.pins = new HostKeyPins(opts.pinsFile);
  }

  private async privateKey(): Promise<Buffer> {
    if (!this.key) {
      try {
        this.key = await readFile(this.opts.keyPath);
      } catch (err) {
        throw new ConfigError(
          `cannot read the ssh private key file ${this.opts.keyPath}: ${(err as NodeJS.ErrnoException).code}`,
        );
      }
    }
    return this.key;
  }

  private connect(info: LeaseInfo): Promise<SshTransport> {
    const extra: { readyTimeoutMs?: number; connectRetries?: number; commandAgent?: boolean } = {};
    if (this.opts.readyTimeoutMs !== undefined) extra.readyTimeoutMs = this.opts.readyTimeoutMs;
    if (this.opts.connectRetries !== undefined) extra.connectRetries = this.opts.connectRetries;
    if (this.opts.commandAgent !== undefined) extra.commandAgent = this.opts.commandAgent;
    return this.privateKey().then((key) => connectLease(info, key, this.pins, extra));
  }

  /** An idle connection, else a new one; lent until the lease's transport is closed. */
  private async lend(info: LeaseInfo): Promise<LentTransport> {
    if (this.closed) throw new TransportError('ssh provider is closed', { retryable: false });
    const held = this.idle.pop();
    if (held) clearTimeout(held.timer);
    const t = held?.t ?? (await this.connect(info));
    return new LentTransport(t, (back) => this.giveBack(back));
  }

  private giveBack(t: SshTransport): void {
    if (this.closed) return void t.close();
    const timer = setTimeout(() => {
      const i = this.idle.findIndex((e) => e.t === t);
      if (i >= 0) this.idle.splice(i, 1);
      void t.close();
    }, IDLE_CONNECTION_MS);
    this.idle.push({ t, timer });
  }

  /** Connects and returns the lease (id `user@host:port`, cost 0); the work root is created. */
  async acquire(_spec: JobSpec, ctx: AcquireContext): Promise<Lease> {
    if (ctx.signal.aborted) throw new CancelledError('acquire cancelled');
    const { host, port, user } = this.opts;
    const base: LeaseInfo = {
      driver: 'ssh',
      id: `${user}@${host}:${port}`,
      host,
      port,
      user,
      workRoot: this.opts.workRoot,
      acquiredAt: new Date().toISOString(),
      hourlyCostUsd: 0,
    };
    const transport = await this.lend(base);
    try {
      if (ctx.signal.aborted) throw new CancelledError('acquire cancelled');
      if (this.root === undefined) {
        const root = await resolveRemoteRoot(transport, this.opts.workRoot);
        await transport.mkdirp(root);
        this.root = root;
      }
      const info: LeaseInfo = { ...base, workRoot: this.root };
      await ctx.onLeaseCreated?.(info);
      return { info, transport };
    } catch (err) {
      await transport.close();
      throw err;
    }
  }

  /** Connects again to a recorded lease of this host; null for another driver or host. */
  async reattach(info: LeaseInfo): Promise<Lease | null> {
    if (info.driver !== 'ssh') return null;
    if (info.host !== this.opts.host || (info.port ?? 22) !== this.opts.port) return null;
    return { info, transport: await this.lend(info) };
  }

  /** The host is not ours: nothing to give back. Idempotent. */
  async release(_info: LeaseInfo): Promise<void> {}

  /** Nothing billable is held. */
  async list(): Promise<LeaseInfo[]> {
    return [];
  }

  /** Closes the idle connections; those still lent close when their lease's transport does. */
  async close(): Promise<void> {
    this.closed = true;
    const held = this.idle.splice(0);
    for (const e of held) clearTimeout(e.timer);
    await Promise.all(held.map((e) => e.t.close()));
  }
}

/** A pooled connection as one lease sees it: closing it hands the connection back. */
class LentTransport implements Transport {
  readonly kind = 'ssh' as const;
  private readonly base: number;
  private returned = false;

  constructor(
    private readonly inner: SshTransport,
    private readonly giveBack: (t: SshTransport) => void,
  ) {
    this.base = inner.reconnects;
  }

  /** Reconnects while this lease held the connection. */
  get reconnects(): number {
    return this.inner.reconnects - this.base;
  }

  get label(): string {
    return this.inner.label;
  }

  /** The connection, unless this lease gave it back (then, as a closed transport: not retryable). */
  private use(): SshTransport {
    if (this.returned) {
      throw new TransportError(`ssh transport to ${this.inner.label} is closed`, { retryable: false });
    }
    return this.inner;
  }

  async exec(command: string, opts?: ExecOptions): Promise<ExecResult> {
    return this.use().exec(command, opts);
  }
  async putFile(localPath: string, remotePath: string): Promise<void> {
    return this.use().putFile(localPath, remotePath);
  }
  async getFile(remotePath: string, localPath: string): Promise<void> {
    return this.use().getFile(remotePath, localPath);
  }
  async putData(data: Buffer, remotePath: string, mode?: number): Promise<void> {
    return this.use().putData(data, remotePath, mode);
  }
  async readWhole(remotePath: string, maxBytes: number): Promise<Buffer | null> {
    return this.use().readWhole(remotePath, maxBytes);
  }
  async readRange(remotePath: string, offset: number, maxBytes: number): Promise<Buffer> {
    return this.use().readRange(remotePath, offset, maxBytes);
  }
  async stat(remotePath: string): Promise<RemoteStat | null> {
    return this.use().stat(remotePath);
  }
  async mkdirp(remotePath: string): Promise<void> {
    return this.use().mkdirp(remotePath);
  }
  async close(): Promise<void> {
    if (this.returned) return;
    this.returned = true;
    this.giveBack(this.inner);
  }
}
