/**
 * One long-lived command channel per ssh connection. A plain exec opens an sshd session and starts
 * the user's login shell, which reads its rc files (conda or pyenv init on many GPU images: up to
 * seconds) before running anything; a symbol runs 8+ execs and one per poll while following. The
 * agent (ssh/agentSource.ts, Python 3) is started once per connection by one exec and then runs
 * every command as a child of its own: one round trip per command, the login shell paid once.
 *
 * Nothing is installed: the program travels on the exec's command line. When it cannot start (no
 * python3 on the host, an old one) the caller falls back to plain execs and says so once. A
 * dropped connection ends the agent; commands in flight fail as they do on a plain exec.
 */
import type { Client, ClientChannel } from 'ssh2';
import { ConnectionLostError, TransportError } from '../../errors.js';
import { shellQuote as q } from '../../recipes/template.js';
import { AGENT_SOURCE } from './agentSource.js';

/** How long the login shell and python3 may take to say hello (rc files can be slow). */
export const AGENT_START_TIMEOUT_MS = 30_000;

export interface AgentHandlers {
  /** The command's pid (also its process group and session id). */
  onStart(pid: number): void;
  /** The command ended: its exit code and at most `max` bytes of each of its stdout and stderr. */
  onExit(code: number, stdout: Buffer, stderr: Buffer): void;
  /** The command could not start, or the agent went away: no onExit follows. */
  onError(err: Error): void;
}

/** A file read by the agent: its bytes, `big` when it holds the limit or more, or an errno name. */
export type AgentFile = { data: Buffer } | { big: true } | { error: string };
/** The same, as the agent sends it. */
type WireFile = { b64: string } | { big: true } | { error: string };
/** A file written by the agent: done, or the errno name that stopped it. */
export type AgentWritten = { ok: true } | { error: string };

type AgentMessage =
  | { t: 'hello'; v: number; pid: number }
  | { t: 'files'; id: number; files: WireFile[] }
  | { t: 'written'; id: number; files: AgentWritten[] }
  | { t: 'start'; id: number; pid: number }
  | { t: 'exit'; id: number; code: number; out: string; err: string }
  | { t: 'error'; id: number; message: string };

/** The exec that starts the agent: the login shell runs it, so the agent has the rc files' env. */
export function agentCommand(interpreter: string): string {
  return `exec ${q(interpreter)} -c ${q(AGENT_SOURCE)}`;
}

export class SshAgent {
  private nextId = 1;
  private readonly running = new Map<number, AgentHandlers>();
  /** File requests waiting for their answer (`files` or `written`), by id. */
  private readonly fileCalls = new Map<
    number,
    { resolve(answer: unknown[]): void; reject(e: Error): void }
  >();
  private buf = '';
  private gone: Error | undefined;

  private constructor(
    /** The agent's pid on the host. */
    readonly pid: number,
    readonly client: Client,
    private readonly ch: ClientChannel,
    private readonly label: string,
  ) {}

  /** Whether the agent can take commands (its channel is open). */
  get alive(): boolean {
    return this.gone === undefined;
  }

  /**
   * Starts the agent on an exec channel already opened with agentCommand(). Resolves once it said
   * hello; rejects (with what the host printed) when the channel closes first or the deadline passes.
   */
  static start(client: Client, ch: ClientChannel, label: string, timeoutMs = AGENT_START_TIMEOUT_MS) {
    return new Promise<SshAgent>((resolve, reject) => {
      let pre = '';
      let stderr = '';
      let agent: SshAgent | undefined;
      let exited = false;
      const timer = setTimeout(() => {
        ch.close();
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      ch.stderr.on('data', (b: Buffer) => {
        if (!agent && stderr.length < 2000) stderr += b.toString('utf8');
      });
      ch.on('data', (b: Buffer) => {
        if (agent) return agent.onData(b);
        pre += b.toString('utf8');
        // Anything an rc file printed comes first: the hello is the first line that is one.
        const at = pre.indexOf('{"t":"hello"');
        if (at < 0 || pre.indexOf('\n', at) < 0) {
          if (pre.length > 65536) pre = pre.slice(-1024);
          return;
        }
        clearTimeout(timer);
        const hello = pre.slice(at, pre.indexOf('\n', at));
        agent = new SshAgent(helloPid(hello), client, ch, label);
        const rest = pre.slice(pre.indexOf('\n', at) + 1);
        pre = '';
        if (rest) agent.onData(Buffer.from(rest, 'utf8'));
        resolve(agent);
      });
      ch.on('exit', () => {
        exited = true;
      });
      ch.on('close', () => {
        if (agent) return agent.onClose();
        clearTimeout(timer);
        // No exit status: the connection went, not the program.
        if (!exited) return reject(new ConnectionLostError(`ssh connection to ${label} was lost`));
        const why = stderr.trim().split('\n').slice(-1)[0]?.slice(0, 300);
        reject(new Error(why ? `it exited: ${why}` : 'it exited before answering'));
      });
    });
  }

  /** Runs `bash -c command` with the agent's environment plus `env`; returns the request id. */
  run(command: string, env: Record<string, string>, max: number, handlers: AgentHandlers): number {
    const id = this.nextId++;
    if (this.gone) {
      handlers.onError(this.gone);
      return id;
    }
    this.running.set(id, handlers);
    this.ch.write(JSON.stringify({ t: 'run', id, cmd: command, env, max }) + '\n');
    return id;
  }

  /**
   * Reads whole files on the host in one request, each up to its limit (exclusive): the answers in
   * the order asked. Rejects when the agent goes away first.
   */
  async read(files: [path: string, limit: number][]): Promise<AgentFile[]> {
    const answers = (await this.fileRequest('read', files)) as WireFile[];
    return answers.map((f) =>
      'b64' in f ? { data: Buffer.from(f.b64, 'base64') } : 'big' in f ? { big: true } : { error: f.error },
    );
  }

  /**
   * Writes whole files on the host in one request (each through `.part` and a rename): the answers
   * in the order asked. Rejects when the agent goes away first.
   */
  async write(files: [path: string, mode: number, data: Buffer][]): Promise<AgentWritten[]> {
    // The bytes follow the line raw: no base64 to make, quote-scan and send a third larger.
    const head = files.map(([path, mode, data]) => [path, mode, data.length]);
    const answers = await this.fileRequest(
      'write',
      head,
      files.map(([, , data]) => data),
    );
    return answers as AgentWritten[];
  }

  private fileRequest(t: 'read' | 'write', files: unknown[], bodies: Buffer[] = []): Promise<unknown[]> {
    if (this.gone) return Promise.reject(this.gone);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.fileCalls.set(id, { resolve, reject });
      this.ch.write(JSON.stringify({ t, id, files }) + '\n');
      for (const b of bodies) if (b.length) this.ch.write(b);
    });
  }

  /** Kills the process group of request `id` (SIGKILL); nothing when it already ended. */
  kill(id: number): void {
    if (!this.gone) this.ch.write(JSON.stringify({ t: 'kill', id }) + '\n');
  }

  /** Ends the agent (its stdin closes, it exits). */
  close(): void {
    this.ch.end();
  }

  private onData(b: Buffer): void {
    this.buf += b.toString('utf8');
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let m: AgentMessage;
      try {
        m = JSON.parse(line) as AgentMessage;
      } catch {
        continue; // not ours (the agent writes nothing else; be safe)
      }
      this.onMessage(m);
    }
  }

  private onMessage(m: AgentMessage): void {
    if (m.t === 'hello') return;
    if (m.t === 'files' || m.t === 'written') {
      const r = this.fileCalls.get(m.id);
      this.fileCalls.delete(m.id);
      r?.resolve(m.files);
      return;
    }
    const h = this.running.get(m.id);
    if (!h) return;
    switch (m.t) {
      case 'start':
        return h.onStart(m.pid);
      case 'exit':
        this.running.delete(m.id);
        return h.onExit(m.code, Buffer.from(m.out, 'base64'), Buffer.from(m.err, 'base64'));
      case 'error':
        this.running.delete(m.id);
        return h.onError(new TransportError(`cannot start bash on ${this.label}: ${m.message}`));
    }
  }

  private onClose(): void {
    this.gone = new ConnectionLostError(`ssh connection to ${this.label} was lost while a command ran`);
    const handlers = [...this.running.values()];
    this.running.clear();
    for (const h of handlers) h.onError(this.gone);
    const calls = [...this.fileCalls.values()];
    this.fileCalls.clear();
    for (const r of calls) r.reject(this.gone);
  }
}

function helloPid(line: string): number {
  try {
    return Number((JSON.parse(line) as { pid?: unknown }).pid) || 0;
  } catch {
    return 0;
  }
}
