/**
 * Bounded shutdown for the long-running commands (worker, scheduler, dashboard, run): the graceful
 * close runs as before, but a hard deadline (worker.shutdownGraceMs + SHUTDOWN_MARGIN_MS) ends the
 * process anyway, non-zero, with one line naming what could not be closed. BullMQ and ioredis calls
 * queue forever while Redis is away, so without it a SIGTERM during an outage never ends.
 *
 * Trainings are never touched here: they run detached (own session) and the next worker reattaches.
 */
import type { CloseStep } from '../util/close.js';

/** What the deadline adds to worker.shutdownGraceMs: the close steps after the workers' grace. */
export const SHUTDOWN_MARGIN_MS = 5_000;

/** Exit code when the deadline passed (systemd/Kubernetes see a failed stop, not a clean one). */
export const DEADLINE_EXIT_CODE = 1;

export interface BoundedShutdownOptions {
  /** "retrain worker", for the line. */
  command: string;
  graceMs: number;
  marginMs?: number;
  write?: (line: string) => void;
  exit?: (code: number) => void;
}

export class BoundedShutdown {
  readonly deadlineMs: number;
  private readonly pending = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private done = false;
  private readonly write: (line: string) => void;
  private readonly exit: (code: number) => void;

  constructor(private readonly opts: BoundedShutdownOptions) {
    this.deadlineMs = opts.graceMs + (opts.marginMs ?? SHUTDOWN_MARGIN_MS);
    this.write = opts.write ?? ((line) => process.stderr.write(line + '\n'));
    this.exit = opts.exit ?? ((code) => process.exit(code));
  }

  /** Starts the clock (idempotent). Unref'd: a close that finishes lets the process end normally. */
  arm(): void {
    if (this.timer || this.done) return;
    const why = `did not finish within ${fmt(this.deadlineMs)} (worker.shutdownGraceMs + ${fmt(this.deadlineMs - this.opts.graceMs)})`;
    this.timer = setTimeout(() => this.giveUp(why), this.deadlineMs);
    this.timer.unref();
  }

  /** The close finished: the deadline no longer applies. */
  finish(): void {
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Ends the process now (the deadline passed, or a second signal asked to leave). */
  giveUp(why: string): void {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    const stuck = [...this.pending.keys()];
    this.write(
      `${this.opts.command}: shutdown ${why}; ` +
        (stuck.length ? `could not close: ${stuck.join(', ')}` : 'nothing left to close') +
        `; exiting ${DEADLINE_EXIT_CODE} (running trainings are left alone: the next worker reattaches)`,
    );
    this.exit(DEADLINE_EXIT_CODE);
  }

  /** Runs a named close step, remembered as pending until it settles. */
  readonly step: CloseStep = async (name, fn) => {
    this.pending.set(name, (this.pending.get(name) ?? 0) + 1);
    try {
      return await fn();
    } finally {
      const n = (this.pending.get(name) ?? 1) - 1;
      if (n <= 0) this.pending.delete(name);
      else this.pending.set(name, n);
    }
  };
}

function fmt(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Resolves with the first SIGINT/SIGTERM. A second one during the close leaves at once through
 * `shutdown.giveUp` (an operator pressing Ctrl-C twice, or a supervisor that escalates).
 */
export function untilSignal(shutdown: BoundedShutdown): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const first = (sig: NodeJS.Signals) => {
      process.off('SIGINT', first);
      process.off('SIGTERM', first);
      shutdown.arm();
      const again = (s: NodeJS.Signals) => shutdown.giveUp(`interrupted by a second ${s}`);
      process.once('SIGINT', again);
      process.once('SIGTERM', again);
      resolve(sig);
    };
    process.on('SIGINT', first);
    process.on('SIGTERM', first);
  });
}
