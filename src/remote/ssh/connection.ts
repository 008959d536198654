/**
 * The life of one ssh2 connection behind the transport: dialing (pinned host key, backoff,
 * `connectRetries`), noticing a drop and failing what was in flight on it (retryable), opening exec
 * channels and the one SFTP session, each retried once on a fresh connection when the old one was
 * found dead.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import ssh2 from 'ssh2';
import type { Client, ClientChannel, ConnectConfig, SFTPWrapper } from 'ssh2';
import { ConnectionLostError, RetrainError, TransportError } from '../../errors.js';
import {
  badSettingsError,
  channelError,
  closedError,
  connectError,
  isLostMessage,
  lostError,
  oneLine as oneLineMsg,
  sftpError,
} from './errors.js';
import { agentCommand, SshAgent } from './agent.js';
import type { HostKeyPins, PinResult } from './hostKeys.js';

export interface SshConnectOptions {
  host: string;
  port: number;
  username: string;
  /** Never logged and never put into an error message. */
  privateKey: Buffer;
  /** Host key pinning (trust on first use). Without it any host key is accepted. */
  pins?: HostKeyPins;
  /** Key in `pins`; default `ssh:<host>:<port>`. */
  pinId?: string;
  /** Handshake deadline per attempt; default 20000. */
  readyTimeoutMs?: number;
  /** Further connection attempts after a failed one (retryable failures only); default 3. */
  connectRetries?: number;
  /** SSH keepalive interval; default 15000 (a dead peer is noticed after 3 missed replies). */
  keepaliveIntervalMs?: number;
  /**
   * Run commands through one command agent per connection (ssh/agent.ts): default true. When it
   * cannot start, commands run as plain execs and `onNotice` says so.
   */
  agent?: boolean;
  /** The agent's interpreter on the host; default `python3`. */
  agentInterpreter?: string;
  /** One-line notices (the agent's fallback); default: written to stderr. */
  onNotice?: (line: string) => void;
}

export class SshConnection {
  /** `user@host:port`, for messages. */
  readonly label: string;
  /** How many connections were established (1 after connect; +1 per reconnect). */
  connectCount = 0;
  private readonly pinId: string;
  private client: Client | null = null;
  private dialing: Promise<Client> | null = null;
  private sftpFor: Client | null = null;
  private sftpP: Promise<SFTPWrapper> | null = null;
  private closed = false;
  /** The command agent of connection `agentOn` (null: it could not start there; plain execs). */
  private agentOn: Client | null = null;
  private agentP: Promise<SshAgent | null> | null = null;
  /** Agents that started (one per connection while each lives), for tests. */
  agentStarts = 0;
  /** Rejecters of calls in flight, per connection, run when that connection drops. */
  private readonly inflight = new Map<Client, Set<(err: Error) => void>>();

  constructor(private readonly opts: SshConnectOptions) {
    this.label = `${opts.username}@${opts.host}:${opts.port}`;
    this.pinId = opts.pinId ?? `ssh:${opts.host}:${opts.port}`;
  }

  /** Whether a connection is up right now (a later call reconnects when not). */
  get connected(): boolean {
    return this.client !== null;
  }

  /** The connection up now, dialing one (shared by concurrent callers) when there is none. */
  async conn(): Promise<Client> {
    if (this.closed) throw closedError(this.label);
    if (this.client) return this.client;
    if (!this.dialing) {
      this.dialing = this.dialWithRetries().finally(() => {
        this.dialing = null;
      });
    }
    return this.dialing;
  }

  private async dialWithRetries(): Promise<Client> {
    const attempts = 1 + Math.max(0, this.opts.connectRetries ?? 3);
    let last: TransportError | undefined;
    for (let i = 0; i < attempts; i++) {
      if (i > 0) await sleep(Math.min(500 * 2 ** (i - 1), 5000));
      if (this.closed) break;
      try {
        const c = await this.dialOnce();
        if (this.closed) {
          c.end();
          break;
        }
        this.client = c;
        this.connectCount++;
        return c;
      } catch (err) {
        last = err as TransportError;
        if (!last.retryable) throw last;
      }
    }
    if (this.closed) throw closedError(this.label);
    throw last ?? new TransportError(`cannot connect to ${this.label}`);
  }

  private dialOnce(): Promise<Client> {
    return new Promise<Client>((resolve, reject) => {
      const c = new ssh2.Client();
      let ready = false;
      let settled = false;
      let pinResult: PinResult | Error | undefined;
      const fail = (err: TransportError) => {
        if (settled) return;
        settled = true;
        c.end();
        reject(err);
      };
      c.on('ready', () => {
        ready = true;
        settled = true;
        resolve(c);
      });
      c.on('error', (err: Error & { level?: string; code?: string }) => {
        if (!ready) fail(connectError(err, pinResult, this.label, this.pinId));
        else this.onDrop(c);
      });
      c.on('end', () => (ready ? this.onDrop(c) : undefined));
      c.on('close', () => {
        if (!ready)
          fail(
            connectError(
              new Error('connection closed during the handshake'),
              pinResult,
              this.label,
              this.pinId,
            ),
          );
        else this.onDrop(c);
      });
      const cfg: ConnectConfig = {
        host: this.opts.host,
        port: this.opts.port,
        username: this.opts.username,
        privateKey: this.opts.privateKey,
        readyTimeout: this.opts.readyTimeoutMs ?? 20_000,
        keepaliveInterval: this.opts.keepaliveIntervalMs ?? 15_000,
        keepaliveCountMax: 3,
      };
      if (this.opts.pins) {
        cfg.hostVerifier = this.opts.pins.verifier(this.pinId, (r) => {
          pinResult = r;
        });
      }
      try {
        c.connect(cfg);
      } catch {
        fail(badSettingsError(this.label));
      }
    });
  }

  /** The connection `c` is gone: forget it and fail what was running on it. */
  onDrop(c: Client): void {
    if (this.client === c) this.client = null;
    if (this.sftpFor === c) {
      this.sftpFor = null;
      this.sftpP = null;
    }
    if (this.agentOn === c) {
      this.agentOn = null;
      this.agentP = null;
    }
    const waiting = this.inflight.get(c);
    if (waiting) {
      this.inflight.delete(c);
      const err = lostError(this.label);
      for (const r of waiting) r(err);
    }
    c.end();
  }

  /** Runs `fn`, failing it at once (retryable) if connection `c` drops meanwhile. */
  guard<T>(c: Client, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let set = this.inflight.get(c);
      if (!set) this.inflight.set(c, (set = new Set()));
      const s = set;
      const onDrop = (err: Error) => reject(err);
      s.add(onDrop);
      fn().then(
        (v) => {
          s.delete(onDrop);
          resolve(v);
        },
        (err: unknown) => {
          s.delete(onDrop);
          reject(err);
        },
      );
    });
  }

  /** Whether `err` on connection `c` means that connection is gone. */
  private isLost(c: Client, err: unknown): boolean {
    return this.client !== c || isLostMessage(err);
  }

  /** Opens an exec channel; retried once on a fresh connection when the old one was dead. */
  async openExec(cmd: string): Promise<{ c: Client; ch: ClientChannel }> {
    for (let attempt = 0; ; attempt++) {
      const c = await this.conn();
      try {
        return { c, ch: await execOn(c, cmd) };
      } catch (err) {
        const lost = this.isLost(c, err);
        if (lost) this.onDrop(c);
        if (lost && attempt === 0) continue;
        throw lost ? lostError(this.label) : channelError(this.label, err);
      }
    }
  }

  /**
   * The command agent on the connection up now, started on first use (concurrent callers share
   * the start); null when agents are off or it could not start on this connection (then execs are
   * plain, and one notice said why). A dead agent on a live connection is started again; a
   * connection found dead while starting one is replaced once, as openExec does.
   */
  async agent(): Promise<{ c: Client; agent: SshAgent | null }> {
    for (let attempt = 0; ; attempt++) {
      const c = await this.conn();
      if (this.opts.agent === false) return { c, agent: null };
      if (this.agentOn !== c || !this.agentP) {
        this.agentOn = c;
        this.agentP = this.startAgent(c);
      }
      const p = this.agentP;
      try {
        const agent = await p;
        if (agent && !agent.alive) {
          if (this.agentP === p) this.agentP = null;
          if (attempt === 0) continue;
          throw lostError(this.label);
        }
        return { c, agent };
      } catch (err) {
        if (attempt === 0 && err instanceof ConnectionLostError) continue;
        throw err;
      }
    }
  }

  /** The pid on the host of the agent of the connection up now, when one runs (tests). */
  async agentPid(): Promise<number | undefined> {
    if (!this.client || this.agentOn !== this.client || !this.agentP) return undefined;
    const a = await this.agentP.catch(() => null);
    return a?.alive ? a.pid : undefined;
  }

  private async startAgent(c: Client): Promise<SshAgent | null> {
    const interpreter = this.opts.agentInterpreter ?? 'python3';
    try {
      const ch = await execOn(c, agentCommand(interpreter));
      const agent = await SshAgent.start(c, ch, this.label);
      this.agentStarts++;
      return agent;
    } catch (err) {
      if (err instanceof ConnectionLostError || this.isLost(c, err)) {
        this.onDrop(c);
        throw lostError(this.label);
      }
      const why = err instanceof Error ? oneLineMsg(err.message) : String(err);
      const notice =
        `ssh ${this.label}: the command agent (${interpreter}) could not start (${why}); ` +
        'running each command as a plain exec (one login shell each)';
      (this.opts.onNotice ?? ((l: string) => process.stderr.write(`retrain: ${l}\n`)))(notice);
      return null;
    }
  }

  private sftpOn(c: Client): Promise<SFTPWrapper> {
    if (this.sftpFor !== c || !this.sftpP) {
      this.sftpFor = c;
      const p = new Promise<SFTPWrapper>((resolve, reject) => {
        try {
          c.sftp((err, s) => {
            if (err) return reject(err);
            s.on('close', () => {
              if (this.sftpP === p) this.sftpP = null;
            });
            resolve(s);
          });
        } catch (err) {
          reject(err);
        }
      });
      this.sftpP = p;
      p.catch(() => {
        if (this.sftpP === p) this.sftpP = null;
      });
    }
    return this.sftpP;
  }

  /** Runs an SFTP operation; when the connection was lost, once more on a fresh one. */
  async withSftp<T>(op: string, path: string, fn: (s: SFTPWrapper) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const c = await this.conn();
      try {
        return await this.guard(c, async () => fn(await this.sftpOn(c)));
      } catch (err) {
        if (err instanceof RetrainError && !(err instanceof TransportError)) throw err;
        const lost = this.isLost(c, err);
        if (lost) this.onDrop(c);
        if (lost && attempt === 0) continue;
        if (err instanceof TransportError) throw err;
        if (lost) throw lostError(this.label, `during ${op}`);
        throw sftpError(op, path, err, this.label);
      }
    }
  }

  /** Ends the connection; later calls fail (not retryable). Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const c = this.client;
    this.client = null;
    if (c) {
      const gone = new Promise<void>((r) => c.once('close', () => r()));
      const waiting = this.inflight.get(c);
      this.inflight.delete(c);
      const err = closedError(this.label, true);
      for (const r of waiting ?? []) r(err);
      c.end();
      await Promise.race([gone, sleep(2000)]);
    }
  }
}

/** Opens an exec channel on connection `c`. */
function execOn(c: Client, cmd: string): Promise<ClientChannel> {
  return new Promise<ClientChannel>((resolve, reject) => {
    try {
      c.exec(cmd, (err, ch) => (err ? reject(err) : resolve(ch)));
    } catch (err) {
      reject(err);
    }
  });
}
