/**
 * Running a command on the host. Through the connection's command agent when it runs (ssh/agent.ts:
 * one round trip, no new session or login shell; env values travel on the agent's stdin, a kill
 * goes to the command's process group); otherwise a plain exec, as follows. The exec request names only a fixed wrapper and the command
 * (`exec bash --norc --noprofile -c WRAPPER retrain-exec COMMAND`); the wrapper prints its pid
 * (which is the session, process group and command pid: sshd makes the login shell a session
 * leader and every step `exec`s), reads `export NAME='value'` lines from stdin up to a NUL into a
 * shell variable, evals them and `exec`s `bash -c COMMAND`. So ExecOptions.env (secrets) never
 * appears on a command line, in a file, or through AcceptEnv. A timeout or an abort kills the
 * command's whole process group on the host.
 */
import { constants } from 'node:os';
import { CancelledError, ConnectionLostError, TransportError } from '../../errors.js';
import { shellQuote as q } from '../../recipes/template.js';
import { Capped } from '../execUtil.js';
import type { ExecOptions, ExecResult } from '../transport.js';
import type { Client } from 'ssh2';
import type { SshAgent } from './agent.js';
import type { SshConnection } from './connection.js';

const DEFAULT_MAX_OUTPUT = 1024 * 1024;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Runs in `bash -c` on the host: see the module comment. `$1` is the command. */
const WRAPPER = [
  'echo "$$"',
  "IFS= read -r -d '' __retrain_env || true",
  'eval "$__retrain_env"',
  'unset __retrain_env',
  'exec bash --norc --noprofile -c "$1"',
].join('; ');

/**
 * Runs `bash -c command` on the host. Resolves with the exit code (128+n for a signal) and at
 * most maxOutputBytes of stdout and of stderr. Rejects with TransportError when the connection
 * fails or drops (retryable) or the timeout passes (after killing the command's process group),
 * CancelledError when the signal aborts (the process group is killed then too).
 */
export async function sshExec(
  conn: SshConnection,
  command: string,
  opts: ExecOptions = {},
): Promise<ExecResult> {
  if (opts.signal?.aborted) throw new CancelledError('command cancelled before start');
  checkEnv(opts.env);
  for (let attempt = 0; ; attempt++) {
    const { c, agent } = await conn.agent();
    if (!agent) return plainExec(conn, command, opts);
    const state = { started: false };
    try {
      return await agentExec(conn, c, agent, command, opts, state);
    } catch (err) {
      // Lost before the agent said it started the command (a drop not noticed yet on an idle
      // connection): it never ran, so once more on a fresh connection, as a plain exec whose
      // channel never opened is.
      if (attempt === 0 && err instanceof ConnectionLostError && !state.started) continue;
      throw err;
    }
  }
}

/** One command through the connection's agent (ssh/agent.ts): same results, kills and errors. */
function agentExec(
  conn: SshConnection,
  c: Client,
  agent: SshAgent,
  command: string,
  opts: ExecOptions,
  state: { started: boolean },
): Promise<ExecResult> {
  if (opts.signal?.aborted) throw new CancelledError('command cancelled before start');
  const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  const label = conn.label;
  return conn.guard(
    c,
    () =>
      new Promise<ExecResult>((resolve, reject) => {
        let failure: Error | undefined;
        const done = () => {
          unwatch();
        };
        const fail = (err: Error) => {
          if (failure) return;
          failure = err;
          agent.kill(id);
        };
        const unwatch = watchLimits(label, opts, fail);
        const id = agent.run(command, opts.env ?? {}, max, {
          onStart: () => {
            state.started = true;
          },
          onError: (err) => {
            done();
            reject(failure ?? err);
          },
          onExit: (code, out, err) => {
            done();
            if (failure) return reject(failure);
            resolve({ code, stdout: out.toString('utf8'), stderr: err.toString('utf8') });
          },
        });
      }),
  );
}

/** One command on an exec channel of its own (the login shell runs each): see the module comment. */
async function plainExec(conn: SshConnection, command: string, opts: ExecOptions): Promise<ExecResult> {
  const envScript = buildEnvScript(opts.env);
  const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  const { c, ch } = await conn.openExec(
    `exec bash --norc --noprofile -c ${q(WRAPPER)} retrain-exec ${q(command)}`,
  );
  if (opts.signal?.aborted) {
    ch.close();
    throw new CancelledError('command cancelled before start');
  }
  const label = conn.label;

  return conn.guard(
    c,
    () =>
      new Promise<ExecResult>((resolve, reject) => {
        const stdout = new Capped(max);
        const stderr = new Capped(max);
        let head = Buffer.alloc(0);
        let pid: number | undefined;
        let exitCode: number | undefined;
        let failure: Error | undefined;
        let settled = false;

        const killGroup = async () => {
          if (pid === undefined || pid <= 1) return;
          await rawExec(conn, `kill -KILL -- -${pid} 2>/dev/null; true`, 5000).catch(() => undefined);
        };
        const finish = (err: Error | undefined) => {
          if (settled) return;
          settled = true;
          unwatch();
          if (err) reject(err);
          else resolve({ code: exitCode!, stdout: stdout.text(), stderr: stderr.text() });
        };
        const fail = (err: Error) => {
          if (failure || settled) return;
          failure = err;
          void killGroup().finally(() => {
            ch.close();
            finish(err);
          });
        };

        ch.on('data', (b: Buffer) => {
          if (pid !== undefined) return stdout.add(b);
          head = Buffer.concat([head, b]);
          const nl = head.indexOf(0x0a);
          if (nl < 0) {
            if (head.length > 64) {
              ch.close();
              finish(new TransportError(`unexpected answer from bash on ${label}`));
            }
            return;
          }
          const first = head.subarray(0, nl).toString('utf8').trim();
          pid = /^\d+$/.test(first) ? Number(first) : 0;
          stdout.add(head.subarray(nl + 1));
          head = Buffer.alloc(0);
          if (failure) void killGroup();
        });
        ch.stderr.on('data', (b: Buffer) => stderr.add(b));
        ch.on('exit', (code: number | null, signal?: string) => {
          exitCode = code ?? 128 + signalNumber(signal);
        });
        ch.on('close', () => {
          if (failure) return; // finish() follows the kill
          if (exitCode === undefined) {
            return finish(new ConnectionLostError(`ssh connection to ${label} was lost while a command ran`));
          }
          finish(undefined);
        });

        const unwatch = watchLimits(label, opts, fail);

        ch.end(envScript);
      }),
  );
}

/** A plain exec without env or pid handling, for housekeeping (kill). */
async function rawExec(conn: SshConnection, cmd: string, timeoutMs: number): Promise<number | undefined> {
  const { ch } = await conn.openExec(cmd);
  return new Promise((resolve) => {
    let code: number | undefined;
    const timer = setTimeout(() => {
      ch.close();
      resolve(undefined);
    }, timeoutMs);
    ch.on('data', () => undefined);
    ch.stderr.on('data', () => undefined);
    ch.on('exit', (c: number | null) => {
      code = c ?? undefined;
    });
    ch.on('close', () => {
      clearTimeout(timer);
      resolve(code);
    });
    ch.end();
  });
}

/** Refuses an env the host could not take as given (a bad name, a NUL in a value). */
/**
 * Calls `fail` when the command's time limit passes or its signal aborts; the returned function
 * stops watching (call it once the command has settled).
 */
function watchLimits(label: string, opts: ExecOptions, fail: (err: Error) => void): () => void {
  const timer =
    opts.timeoutMs !== undefined
      ? setTimeout(
          () => fail(new TransportError(`ssh command on ${label} timed out after ${opts.timeoutMs} ms`)),
          opts.timeoutMs,
        )
      : undefined;
  const onAbort = () => fail(new CancelledError('command cancelled'));
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  return () => {
    if (timer) clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  };
}

function checkEnv(env: Record<string, string> | undefined): void {
  for (const [name, value] of Object.entries(env ?? {})) {
    if (!ENV_NAME_RE.test(name)) {
      throw new TransportError(`environment variable name ${JSON.stringify(name)} is not valid`, {
        retryable: false,
      });
    }
    if (value.includes('\0')) {
      throw new TransportError(`environment variable ${name} contains a NUL byte`, { retryable: false });
    }
  }
}

/** `export NAME='value'` lines and the NUL the wrapper reads up to. Values never leave stdin. */
function buildEnvScript(env: Record<string, string> | undefined): string {
  let out = '';
  for (const [name, value] of Object.entries(env ?? {})) out += `export ${name}=${q(value)}\n`;
  return out + '\0';
}

function signalNumber(signal: string | undefined): number {
  if (!signal) return 0;
  const name = (signal.startsWith('SIG') ? signal : `SIG${signal}`) as NodeJS.Signals;
  return constants.signals[name] ?? 0;
}
