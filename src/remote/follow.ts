/**
 * Following a detached run: bounded log tailing, progress, partial outputs, deadline.
 */
import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledError, TimeoutError, TransportError } from '../errors.js';
import { killRun, probeRun } from './lifecycle.js';
import { LogScanner, utf8CompleteLength, type Progress } from './logScan.js';
import type { Transport } from './transport.js';

/** Largest single readRange while tailing train.log. */
export const LOG_CHUNK_BYTES = 256 * 1024;
/**
 * The first poll interval; each next one doubles up to `pollMs`. Each probe waits on the host for
 * the run's end for up to the interval (a long poll), so the end is seen within moments whatever
 * the interval; the short first ones only bring the first log lines and partial outputs sooner.
 * A short run costs one probe (over ssh: one round trip to the connection's command agent).
 */
export const FIRST_POLL_MS = 50;

export interface FollowOptions {
  pid: number;
  /** Epoch ms; past it the run is killed and TimeoutError thrown. */
  deadline: number;
  /** For the timeout message only: the limit the deadline stands for. */
  timeLimitMs?: number;
  signal?: AbortSignal;
  /** Default 1000. The first polls come sooner (FIRST_POLL_MS, doubling up to this). */
  pollMs?: number;
  /** Byte offset in train.log already seen (resume after a reattach). */
  logOffset?: number;
  /** `raw` holds the exact bytes read (`text` is their UTF-8 decoding). */
  onLog?: (text: string, newOffset: number, raw: Buffer) => Promise<void> | void;
  onProgress?: (p: Progress) => void;
  /** Output names to report once they exist with a size that stayed the same for `pollMs`. */
  partial?: string[];
  /** Called once per partial file; an error it throws ends the follow. */
  onPartial?: (name: string) => Promise<void>;
}

export interface FollowResult {
  exitCode: number;
  /** Byte offset in train.log up to which everything was read. */
  logOffset: number;
  /** Most characters the line scanner held at once (bounded by MAX_LINE_CHARS). */
  peakLineBufferChars: number;
}

/**
 * Polls the run until `exit_code` exists, then reads the rest of train.log and resolves (any exit
 * code, 124 for a step timeout included). The log is read in chunks of at most LOG_CHUNK_BYTES and
 * scanned with a bounded line buffer, so memory stays flat for any log size or line length.
 * Throws CancelledError when `signal` aborts (the run is left alone for a later reattach),
 * TransportError (retryable) when the process vanished without an exit code, and TimeoutError
 * after killing the run's whole process tree when the deadline passes.
 */
export async function followRun(t: Transport, workdir: string, opts: FollowOptions): Promise<FollowResult> {
  const pollMs = opts.pollMs ?? 1000;
  const logPath = posix.join(workdir, 'train.log');
  const scanner = new LogScanner();
  /** Size of each partial output and since when it has had that size. */
  const partialSeen = new Map<string, { size: number; since: number }>();
  const partialDone = new Set<string>();
  let offset = opts.logOffset ?? 0;
  let polls = 0;

  const checkAbort = () => {
    if (opts.signal?.aborted) throw new CancelledError('stopped following the training run');
  };
  const emit = async (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    offset += chunk.length;
    for (const p of scanner.push(text)) opts.onProgress?.(p);
    await opts.onLog?.(text, offset, chunk);
  };
  /** Reads up to `upTo` (or to the end of the file when finishing). */
  const readLog = async (upTo: number | undefined) => {
    for (;;) {
      checkAbort();
      const want = upTo === undefined ? LOG_CHUNK_BYTES : Math.min(LOG_CHUNK_BYTES, upTo - offset);
      if (want <= 0) return;
      const buf = await t.readRange(logPath, offset, want);
      if (buf.length === 0) return;
      let n = utf8CompleteLength(buf);
      if (n === 0) {
        if (upTo !== undefined) return; // half a character at the end: wait for the rest
        n = buf.length;
      }
      await emit(buf.subarray(0, n));
    }
  };

  const remote = t.kind === 'ssh';
  /** train.log's size when it is a file (as the host's `[ -f train.log ]` would see it). */
  const localLogSize = async () => {
    const st = await t.stat(logPath);
    return st && !st.isDirectory ? st.size : undefined;
  };

  for (;;) {
    checkAbort();
    const interval = Math.min(pollMs, FIRST_POLL_MS * 2 ** polls++);
    let probe;
    try {
      probe = await probeRun(t, workdir, opts.pid, {
        partial: opts.partial ?? [],
        waitMs: interval,
        ...(opts.signal ? { signal: opts.signal } : {}),
        // Over ssh the probe brings the log's new bytes: no SFTP read after it (two round trips).
        // Locally the log's size is a stat here, not a `stat` process there.
        ...(remote ? { logFrom: offset } : { logSize: false }),
      });
    } catch (err) {
      checkAbort();
      throw err;
    }
    if (probe.logTail) {
      // A character cut at the end of the tail is read again with the rest.
      const n = utf8CompleteLength(probe.logTail);
      if (n > 0) await emit(probe.logTail.subarray(0, n));
    }
    // Read after the probe, a local size is never smaller than the host's would be, and after the
    // exit code (run.sh's last write) it is final.
    const logSize = remote ? probe.logSize : await localLogSize();
    if (logSize !== undefined) await readLog(logSize);

    for (const [name, size] of probe.partialSizes) {
      if (partialDone.has(name)) continue;
      const seen = partialSeen.get(name);
      if (seen?.size !== size) partialSeen.set(name, { size, since: Date.now() });
      else if (Date.now() - seen.since >= pollMs) {
        partialDone.add(name);
        await opts.onPartial?.(name);
      }
    }

    if (probe.exitCode !== undefined) {
      // The probe read the log's size after the exit code, which run.sh writes last: what is left
      // to read is only a character cut in half at that size (or a log the probe did not see).
      const rest = logSize !== undefined ? offset < logSize : !!(await t.stat(logPath));
      if (rest) await readLog(undefined);
      for (const p of scanner.flush()) opts.onProgress?.(p);
      return { exitCode: probe.exitCode, logOffset: offset, peakLineBufferChars: scanner.peakBufferedChars };
    }
    if (!probe.alive) {
      throw new TransportError(`training process ${opts.pid} vanished without an exit code`);
    }
    if (Date.now() > opts.deadline) {
      let cause: unknown;
      try {
        await killRun(t, workdir, opts.pid);
      } catch (err) {
        cause = err;
      }
      const limit =
        opts.timeLimitMs !== undefined
          ? `of ${formatDuration(opts.timeLimitMs)}`
          : `(deadline ${new Date(opts.deadline).toISOString()})`;
      throw new TimeoutError(`training exceeded its time limit ${limit}; process group ${opts.pid} killed`, {
        cause,
      });
    }
    if (probe.waited) continue;
    // The host could not wait (no fractional `read -t`): wait here instead.
    try {
      await sleep(interval, undefined, { signal: opts.signal });
    } catch {
      checkAbort();
    }
  }
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  const m = Math.round(s / 60);
  return m < 120 ? `${m} min` : `${(m / 60).toFixed(1)} h`;
}
