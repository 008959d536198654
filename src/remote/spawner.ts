/**
 * Starts the local driver's commands from a small helper process instead of from this one.
 *
 * Starting a child from Node forks the whole process: with a worker's few hundred MB mapped, each
 * `spawn` held the event loop ~6 ms, and the local driver starts ~7 commands per symbol: the largest
 * single cost of a short symbol (bench/RESULTS.md, overhead). The helper is a bare Node process
 * (~40 MB) that forks for us, on another core, and streams each command's output and exit back over
 * an IPC channel. One per process, started on first use; it exits when this process goes away.
 * Commands run exactly as before: `bash -c COMMAND` in a process group of its own, with the
 * environment given (sent over the channel, never on a command line).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { TransportError } from '../errors.js';

/**
 * What the helper runs: plain CommonJS, so it needs no build step and no loader. A command's output
 * is kept here (up to the caller's cap; the rest is read and dropped) and sent back with its exit,
 * one message per command: each message wakes the caller's event loop, and a command's start and
 * output as messages of their own cost a short command three wake-ups more.
 */
const HELPER_SOURCE = `
const { spawn } = require('node:child_process');
const send = (m) => { if (process.connected) process.send(m); };
const running = new Map(); // request id -> pid (its process group)
const killGroup = (pid) => { try { process.kill(-pid, 'SIGKILL'); } catch {} };
process.on('message', (m) => {
  if (!m) return;
  if (m.t === 'kill') {
    const pid = running.get(m.id);
    if (pid !== undefined) killGroup(pid);
    return;
  }
  if (m.t !== 'run') return;
  let child;
  try {
    child = spawn('bash', ['-c', m.cmd], { env: m.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  } catch (e) {
    send({ t: 'error', id: m.id, message: String((e && e.message) || e) });
    return;
  }
  if (child.pid !== undefined) running.set(m.id, child.pid);
  let failed = false;
  child.on('error', (e) => { failed = true; running.delete(m.id); send({ t: 'error', id: m.id, message: e.message }); });
  const kept = [[], [], []];
  const left = [0, m.max, m.max];
  const keep = (fd) => (b) => {
    if (left[fd] <= 0) return;
    const part = b.length > left[fd] ? b.subarray(0, left[fd]) : b;
    left[fd] -= part.length;
    kept[fd].push(part);
  };
  child.stdout.on('data', keep(1));
  child.stderr.on('data', keep(2));
  child.on('close', (code, signal) => {
    running.delete(m.id);
    if (failed) return;
    send({ t: 'exit', id: m.id, code, signal, out: Buffer.concat(kept[1]), err: Buffer.concat(kept[2]) });
  });
});
process.on('disconnect', () => process.exit(0));
`;

type HelperMessage =
  | {
      t: 'exit';
      id: number;
      code: number | null;
      signal: NodeJS.Signals | null;
      out: Uint8Array;
      err: Uint8Array;
    }
  | { t: 'error'; id: number; message: string };

export interface SpawnHandlers {
  /** The command ended: its exit, and at most the cap of each of its stdout and stderr. */
  onExit(code: number | null, signal: NodeJS.Signals | null, stdout: Buffer, stderr: Buffer): void;
  /** bash could not be started, or the helper went away: no onExit follows. */
  onError(err: TransportError): void;
}

export class Spawner {
  private static instance: Spawner | undefined;
  private helper: ChildProcess | undefined;
  private nextId = 1;
  private readonly running = new Map<number, SpawnHandlers>();

  /** The process-wide spawner. */
  static shared(): Spawner {
    return (Spawner.instance ??= new Spawner());
  }

  /**
   * Runs `bash -c command` with exactly `env`; the handlers hear how it ends, with at most
   * `maxOutputBytes` of each of stdout and stderr. Returns what kills the command's whole process
   * group (it runs in one of its own); harmless once the command is over.
   */
  run(command: string, env: NodeJS.ProcessEnv, maxOutputBytes: number, handlers: SpawnHandlers): () => void {
    const helper = this.ensureHelper();
    const id = this.nextId++;
    this.running.set(id, handlers);
    this.refWhileBusy();
    helper.send({ t: 'run', id, cmd: command, env, max: maxOutputBytes }, (err) => {
      if (err) this.finish(id)?.onError(helperGone(err.message));
    });
    return () => {
      if (this.running.has(id) && helper.connected) helper.send({ t: 'kill', id }, () => undefined);
    };
  }

  /** The helper's pid while it runs (benchmarks read its CPU time). */
  get helperPid(): number | undefined {
    return this.helper?.pid;
  }

  private ensureHelper(): ChildProcess {
    if (this.helper?.connected) return this.helper;
    const h = spawn(process.execPath, ['-e', HELPER_SOURCE], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'advanced',
      // Only what starting node needs: the commands get their environment with each request, and
      // NODE_OPTIONS (a loader, a profiler) is not for the helper.
      env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin' },
    });
    h.on('message', (m: HelperMessage) => this.onMessage(m));
    const gone = (why: string) => {
      if (this.helper === h) this.helper = undefined;
      for (const id of [...this.running.keys()]) this.finish(id)?.onError(helperGone(why));
    };
    h.on('error', (err) => gone(err.message));
    h.on('exit', (code, signal) => gone(signal ? `it was killed by ${signal}` : `it exited with ${code}`));
    this.helper = h;
    this.refWhileBusy();
    return h;
  }

  private onMessage(m: HelperMessage): void {
    const handlers = this.running.get(m.id);
    if (!handlers) return;
    switch (m.t) {
      case 'exit':
        this.finish(m.id);
        handlers.onExit(m.code, m.signal, asBuffer(m.out), asBuffer(m.err));
        break;
      case 'error':
        this.finish(m.id);
        handlers.onError(new TransportError(`cannot start bash: ${m.message}`));
        break;
    }
  }

  private finish(id: number): SpawnHandlers | undefined {
    const h = this.running.get(id);
    this.running.delete(id);
    this.refWhileBusy();
    return h;
  }

  /** The helper keeps this process alive only while one of its commands runs. */
  private refWhileBusy(): void {
    const h = this.helper;
    if (!h) return;
    const channel = h.channel as { ref?: () => void; unref?: () => void } | undefined;
    if (this.running.size > 0) {
      h.ref();
      channel?.ref?.();
    } else {
      h.unref();
      channel?.unref?.();
    }
  }
}

/** The bytes of a Buffer sent over the channel (it arrives as a Uint8Array), without a copy. */
function asBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function helperGone(why: string): TransportError {
  return new TransportError(`the local command runner stopped (${why}); the command's outcome is unknown`);
}
