import type { EngineSummary } from '../telemetry/summary.js';
import type { NoCapacityAlert } from '../compute/capacityWait.js';
import type { StuckProvisioning } from '../train/stuck.js';
import {
  formatAttemptHung,
  formatFailures,
  formatNoCapacity,
  formatProvisioningStuck,
  formatRunCompleted,
  formatRunStarted,
  type RunStartInfo,
  type SymbolFailure,
} from './format.js';

export type { RunStartInfo, SymbolFailure } from './format.js';

/**
 * What a run tells the people watching it. Every method returns at once and never throws: a
 * notification is never on the training path (sends happen in the background, see telegram.ts).
 */
export interface Notifier {
  /** After the run is enqueued. */
  runStarted(info: RunStartInfo): void;
  /** When a symbol has finally failed (no retry left, or not retryable). */
  symbolFailed(failure: SymbolFailure): void;
  /**
   * An attempt found hung (alive, no sign of work for heartbeatStaleMin): it was killed and the
   * symbol will be retried. Sent at once (a final failure still goes through symbolFailed).
   */
  attemptHung(failure: SymbolFailure): void;
  /** From the run's summary, once the run has ended. */
  runCompleted(summary: EngineSummary): void;
  /**
   * Jobs found stuck in PROVISIONING by one check (each already claimed, so reported once): one
   * message per run, sent at once.
   */
  provisioningStuck(items: StuckProvisioning[]): void;
  /** A run got no GPU for alerts.noCapacityMin while its symbols waited (claimed: once per run). */
  noCapacity?(alert: NoCapacityAlert): void;
  /**
   * Sends what is held back (grouped failures) and waits for pending sends, at most `timeoutMs`;
   * gives up at once when the channel cannot take them before then (rate-limited, backing off).
   */
  flush(timeoutMs?: number): Promise<void>;
}

/** Where messages go (Telegram; a list in tests). */
export interface MessageSink {
  /** Queues one message; returns at once. `date` (YYYYMMDD) picks the log a failure is noted in. */
  send(message: { text: string; date?: string; kind: string }): void;
  flush(timeoutMs: number): Promise<void>;
}

/** When no channel is configured. */
export const noopNotifier: Notifier = {
  runStarted: () => undefined,
  symbolFailed: () => undefined,
  attemptHung: () => undefined,
  runCompleted: () => undefined,
  provisioningStuck: () => undefined,
  flush: async () => undefined,
};

export interface AlertNotifierOptions {
  /**
   * Failures of one run within this window after the first go out as one message (0: those of
   * the same tick). The completion summary sends a run's pending group first.
   */
  groupWindowMs: number;
  /** flush() without an argument waits at most this. */
  flushTimeoutMs: number;
  /** Applied to every text before it leaves (removes secret values). */
  scrub?: (text: string) => string;
  /** A formatting bug must not break a run: reported here instead. */
  onError?: (err: unknown) => void;
}

interface FailureGroup {
  date: string;
  items: SymbolFailure[];
  timer: NodeJS.Timeout;
}

/** Formats run events into short texts, groups failures that come together, hands them to a sink. */
export class AlertNotifier implements Notifier {
  readonly #groups = new Map<string, FailureGroup>();

  constructor(
    private readonly sink: MessageSink,
    private readonly opts: AlertNotifierOptions,
  ) {}

  runStarted(info: RunStartInfo): void {
    this.#guard(() => this.#emit(formatRunStarted(info), info.date, 'start'));
  }

  symbolFailed(failure: SymbolFailure): void {
    this.#guard(() => {
      const group = this.#groups.get(failure.runId);
      if (group) {
        group.items.push(failure);
        return;
      }
      const timer = setTimeout(
        () => this.#guard(() => this.#sendGroup(failure.runId)),
        this.opts.groupWindowMs,
      );
      timer.unref();
      this.#groups.set(failure.runId, { date: failure.date, items: [failure], timer });
    });
  }

  attemptHung(failure: SymbolFailure): void {
    this.#guard(() => this.#emit(formatAttemptHung(failure), failure.date, 'hung'));
  }

  runCompleted(summary: EngineSummary): void {
    this.#guard(() => {
      this.#sendGroup(summary.run_id);
      this.#emit(formatRunCompleted(summary), summary.date, 'completed');
    });
  }

  provisioningStuck(items: StuckProvisioning[]): void {
    this.#guard(() => {
      const byRun = new Map<string, StuckProvisioning[]>();
      for (const s of items) byRun.set(s.runId, [...(byRun.get(s.runId) ?? []), s]);
      for (const group of byRun.values()) {
        this.#emit(formatProvisioningStuck(group), group[0]!.date, 'provisioning_stuck');
      }
    });
  }

  noCapacity(alert: NoCapacityAlert): void {
    this.#guard(() => this.#emit(formatNoCapacity(alert), alert.date, 'no_capacity'));
  }

  async flush(timeoutMs = this.opts.flushTimeoutMs): Promise<void> {
    this.#guard(() => {
      for (const runId of [...this.#groups.keys()]) this.#sendGroup(runId);
    });
    try {
      await this.sink.flush(timeoutMs);
    } catch (err) {
      this.opts.onError?.(err);
    }
  }

  #sendGroup(runId: string): void {
    const group = this.#groups.get(runId);
    if (!group) return;
    clearTimeout(group.timer);
    this.#groups.delete(runId);
    this.#emit(formatFailures(group.items), group.date, 'failures');
  }

  #emit(text: string, date: string, kind: string): void {
    const scrubbed = this.opts.scrub ? this.opts.scrub(text) : text;
    this.sink.send({ text: scrubbed, date, kind });
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      try {
        this.opts.onError?.(err);
      } catch {
        /* never throws */
      }
    }
  }
}
