/**
 * The life of a detached run on the host: start (or reattach), inspect, kill. Each is one exec.
 */
import { TransportError } from '../errors.js';
import { shellQuote as q } from '../recipes/template.js';
import { mustExec, SAFE_SEGMENT_RE } from './execUtil.js';
import { COMMON_SH } from './shellLib.js';
import type { Transport } from './transport.js';

/**
 * Starts run.sh detached (`setsid`, own session and process group) and returns its pid. Never
 * starts a second copy: when `pid` names a live run, that pid is returned (reattach); when
 * `exit_code` exists, the old pid is returned (0 if unknown) without starting. Leftovers of a run
 * that died without an exit code are killed before the fresh start. `env` (secrets) reaches the
 * run only through the exec's environment. Concurrent callers are serialised with flock where
 * the host has it.
 */
export async function startDetached(
  t: Transport,
  workdir: string,
  opts: { env?: Record<string, string> } = {},
): Promise<number> {
  const cmd = [
    'set -u',
    `cd -- ${q(workdir)} 2>/dev/null || { echo 'error nodir'; exit 0; }`,
    COMMON_SH,
    `if command -v flock >/dev/null 2>&1; then exec 9>>start.lock; flock -w 20 9 || { echo 'error lock'; exit 0; }; fi`,
    `pid=''; [ -f pid ] && IFS= read -r pid < pid`,
    `if [ -f exit_code ]; then echo "done \${pid:-0}"; exit 0; fi`,
    `if [ -n "$pid" ] && retrain_alive "$pid"; then echo "running $pid"; exit 0; fi`,
    `if [ -n "$pid" ]; then retrain_kill_session "$pid" 20 >/dev/null; fi`,
    `[ -f run.sh ] || { echo 'error norun'; exit 0; }`,
    // A fresh work dir has none of them: no `rm` process then.
    'for f in pid pid.tmp heartbeat; do if [ -e "$f" ] || [ -L "$f" ]; then rm -f -- pid pid.tmp heartbeat; break; fi; done',
    'setsid bash run.sh 9>&- </dev/null >/dev/null 2>&1 &',
    // run.sh writes its pid first thing (10 s at most). With a nap (no process per look): every
    // 2 ms for 200 ms, then every 100 ms; without: every 10 ms, then every 100 ms, with `sleep`.
    'if retrain_nap_open; then nap=1; n=198; else nap=0; n=120; fi',
    'i=0',
    'while [ "$i" -lt "$n" ]; do',
    '  if [ -s pid ]; then IFS= read -r pid < pid; echo "started $pid"; exit 0; fi',
    '  if [ "$nap" = 1 ]; then',
    '    if [ "$i" -lt 100 ]; then read -r -t 0.002 -u 7; else read -r -t 0.1 -u 7; fi',
    '  elif [ "$i" -lt 20 ]; then sleep 0.01; else sleep 0.1; fi',
    '  i=$((i + 1))',
    'done',
    "echo 'error nopid'",
  ].join('\n');
  const r = await mustExec(t, cmd, 'start the run', { env: opts.env, timeoutMs: 60_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  const m = /^(done|running|started) (\d+)$/.exec(line);
  if (m) return Number(m[2]);
  const why: Record<string, string> = {
    'error nodir': `work dir ${workdir} does not exist on the host`,
    'error lock': `another start holds ${workdir}/start.lock`,
    'error norun': `${workdir}/run.sh is missing (stage the run first)`,
    'error nopid': `run.sh in ${workdir} did not write its pid within 10 s`,
  };
  throw new TransportError(why[line] ?? `unexpected answer while starting the run: ${JSON.stringify(line)}`);
}

export interface RunState {
  /** From the `pid` file. */
  pid?: number;
  /** The run.sh process (session leader working in this work dir) is alive. */
  alive: boolean;
  exitCode?: number;
  /** Age of the last heartbeat, by the host's clock. */
  heartbeatAgeSec?: number;
}

export interface Probe extends RunState {
  /**
   * The host took the probe's `waitMs` (waited for the end, or the run had ended or was gone
   * already): the caller need not sleep before the next probe. False without `waitMs`.
   */
  waited: boolean;
  logSize?: number;
  /** train.log's bytes from `logFrom` (at most LOG_IN_PROBE_BYTES, never past `logSize`). */
  logTail?: Buffer;
  partialSizes: Map<string, number>;
}

export interface ProbeOptions {
  /** Output names whose sizes to report (partial outputs). */
  partial?: string[];
  /**
   * Wait on the host up to this long for the run to end before answering (a long poll): the end
   * is seen within 5 ms instead of a poll interval later, and a short run costs one probe, not
   * one per interval. The answer says whether the host could wait (`waited`).
   */
  waitMs?: number;
  /** Aborts a waiting probe. */
  signal?: AbortSignal;
  /**
   * Also answer with train.log's bytes from this offset (`logTail`), read after its size: over a
   * long link a log that fits needs no SFTP read after the probe (open and read, two round trips).
   * Costs three small processes on the host (tail, head, base64), so the ssh drivers use it.
   */
  logFrom?: number;
  /**
   * Answer with train.log's size (default true). It costs a process on the host (`stat`); the
   * local driver, which can stat the file itself for less, passes false (not with `logFrom`).
   */
  logSize?: boolean;
}

/** Nap of the host's wait loop (retrain_wait_exit). */
const NAP_MS = 5;

/** Most bytes of train.log one probe carries (base64: 4/3 of it on the wire). */
export const LOG_IN_PROBE_BYTES = 64 * 1024;

/**
 * Everything about a run in one exec. `pid` overrides the pid file for the liveness check. With
 * `waitMs`, the host first waits for the run's end (at most that long), then answers.
 */
export async function probeRun(
  t: Transport,
  workdir: string,
  pid?: number,
  opts: ProbeOptions = {},
): Promise<Probe> {
  const partial = opts.partial ?? [];
  partial.forEach(checkPartialName);
  const naps = Math.max(0, Math.ceil((opts.waitMs ?? 0) / NAP_MS));
  const logFrom = opts.logFrom;
  if (logFrom !== undefined && (!Number.isSafeInteger(logFrom) || logFrom < 0)) {
    throw new TransportError(`log offset ${logFrom} is not a byte offset`, { retryable: false });
  }
  const logSize = opts.logSize ?? true;
  if (!logSize && logFrom !== undefined) {
    throw new TransportError('a probe that brings the log tail must also read its size', {
      retryable: false,
    });
  }
  const cmd = [
    `cd -- ${q(workdir)} 2>/dev/null || { echo nodir=1; exit 0; }`,
    COMMON_SH,
    `fp=''; [ -f pid ] && IFS= read -r fp < pid`,
    `p=${pid === undefined ? '"$fp"' : q(String(pid))}`,
    ...(naps > 0
      ? [
          // An ended or gone run needs no wait; a live one is waited for where the host can nap.
          `if [ -f exit_code ] || ! retrain_alive "$p"; then echo waited=1`,
          `elif retrain_nap_open; then retrain_wait_exit "$p" ${naps}; echo waited=1`,
          'else echo waited=0; fi',
          // The pid file is read again: the run may have been restarted while this waited.
          `[ -f pid ] && IFS= read -r fp < pid`,
        ]
      : []),
    'echo "pid=$fp"',
    'if retrain_alive "$p"; then echo alive=1; else echo alive=0; fi',
    '[ -f exit_code ] && { IFS= read -r ec < exit_code; echo "exit=$ec"; }',
    '[ -f heartbeat ] && { IFS= read -r hb < heartbeat; echo "hb=$hb"; }',
    "printf 'now=%(%s)T\\n' -1",
    ...(logSize
      ? ['[ -f train.log ] && echo "log=$(stat -c %s train.log 2>/dev/null || wc -c < train.log)"']
      : []),
    ...(logFrom !== undefined
      ? [
          // No base64 on the host: an empty tail, and the follow reads the log as before.
          `[ -f train.log ] && { printf 'tail='; tail -c +${logFrom + 1} train.log 2>/dev/null | head -c ${LOG_IN_PROBE_BYTES} | base64 2>/dev/null | tr -d '\\n'; echo; }`,
        ]
      : []),
    ...partial.map(
      (n) =>
        `f=out/${n}; [ ! -L out ] && [ -f "$f" ] && [ ! -L "$f" ] && echo "partial=$(stat -c %s -- "$f" 2>/dev/null || wc -c < "$f") ${n}"`,
    ),
    'true',
  ].join('\n');
  const r = await mustExec(t, cmd, 'inspect the run', opts.signal ? { signal: opts.signal } : {});
  const out: Probe = { alive: false, waited: false, partialSizes: new Map() };
  let hb: number | undefined;
  let now: number | undefined;
  for (const line of r.stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const val = line.slice(eq + 1).trim();
    const num = /^\d+$/.test(val) ? Number(val) : undefined;
    if (key === 'nodir') throw new TransportError(`work dir ${workdir} does not exist on the host`);
    else if (key === 'pid' && num !== undefined) out.pid = num;
    else if (key === 'alive') out.alive = val === '1';
    else if (key === 'waited') out.waited = val === '1';
    else if (key === 'exit' && num !== undefined) out.exitCode = num;
    else if (key === 'hb') hb = num;
    else if (key === 'now') now = num;
    else if (key === 'log') out.logSize = num;
    else if (key === 'tail' && val && /^[A-Za-z0-9+/]+={0,2}$/.test(val))
      out.logTail = Buffer.from(val, 'base64');
    else if (key === 'partial') {
      const m = /^(\d+) (.+)$/.exec(val);
      if (m) out.partialSizes.set(m[2]!, Number(m[1]));
    }
  }
  if (hb !== undefined && now !== undefined) out.heartbeatAgeSec = Math.max(0, now - hb);
  // What the log gained between its size and its tail is for the next probe (the size is what
  // the follow reads up to, and after the end nothing is written).
  if (out.logTail && logFrom !== undefined) {
    const upTo = out.logSize === undefined ? 0 : Math.max(0, out.logSize - logFrom);
    out.logTail = upTo > 0 ? out.logTail.subarray(0, upTo) : undefined;
  }
  return out;
}

/** The run's state from its work dir, in one exec. */
export async function inspectRun(t: Transport, workdir: string): Promise<RunState> {
  const { pid, alive, exitCode, heartbeatAgeSec } = await probeRun(t, workdir);
  const out: RunState = { alive };
  if (pid !== undefined) out.pid = pid;
  if (exitCode !== undefined) out.exitCode = exitCode;
  if (heartbeatAgeSec !== undefined) out.heartbeatAgeSec = heartbeatAgeSec;
  return out;
}

/**
 * SIGTERMs the run's process group and every process of its session, waits up to `graceMs`,
 * SIGKILLs what is left and confirms nothing of the run remains (TransportError otherwise). Safe
 * to call on a run that already ended; does nothing when the pid now belongs to another program.
 */
export async function killRun(t: Transport, workdir: string, pid: number, graceMs = 5000): Promise<void> {
  if (!Number.isSafeInteger(pid) || pid <= 1) {
    throw new TransportError(`refusing to kill process group ${pid}`, { retryable: false });
  }
  const tenths = Math.max(0, Math.ceil(graceMs / 100));
  const cmd = [
    `cd -- ${q(workdir)} 2>/dev/null || cd /`,
    COMMON_SH,
    `left=$(retrain_kill_session ${pid} ${tenths})`,
    // A step in a container outlives its killed engine client: stop the container too.
    'retrain_rm_containers',
    'echo "left=$left"',
  ].join('\n');
  const r = await mustExec(t, cmd, 'kill the run', { timeoutMs: graceMs + 20_000 });
  const left = /left=(.*)/.exec(r.stdout)?.[1]?.trim();
  if (left) throw new TransportError(`processes of run ${pid} survived SIGKILL: ${left}`);
}

function checkPartialName(name: string): void {
  if (!SAFE_SEGMENT_RE.test(name)) {
    throw new TransportError(`partial output name ${JSON.stringify(name)} is not a plain file name`, {
      retryable: false,
    });
  }
}
