/**
 * One voice per dependency (Redis, the S3 store, the Vast API) while it is down: every failure of
 * every queue, worker, connection or request is funnelled here, and the log gets one warning when
 * the outage starts, a reminder at most every `remindEveryMs` with its length, and one line when it
 * ends, instead of a line per queue per retry.
 */

export interface OutageLog {
  warn(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
}

export interface OutageReporterOptions {
  /** What is down, as the operator calls it: "Redis", "S3 store", "Vast API". */
  name: string;
  /** Where it was expected, credentials already hidden (see util/displayUrl). */
  target: string;
  log: OutageLog;
  /** Default 30 s. */
  remindEveryMs?: number;
  now?: () => number;
}

export interface OutageState {
  name: string;
  target: string;
  up: boolean;
  /** Epoch ms the current outage started; undefined while up. */
  downSince?: number;
  /** Seconds the current outage has lasted so far. */
  downForSec?: number;
  lastError?: string;
  /** Outages seen since the process started. */
  outages: number;
}

/** ioredis/BullMQ/node errors that mean "cannot reach the server", as opposed to a bad command. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);
const CONNECTION_MESSAGES =
  /Connection is closed|connect ECONNREFUSED|connect ETIMEDOUT|Stream isn't writeable|Reached the max retries per request|read ECONNRESET|write EPIPE|getaddrinfo|socket hang up|ECONNREFUSED/i;

export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_CODES.has(code)) return true;
  return CONNECTION_MESSAGES.test(err.message);
}

function firstLine(err: unknown): string {
  const s = err instanceof Error ? err.message : String(err);
  return s.split('\n')[0]!.slice(0, 200);
}

export class OutageReporter {
  readonly name: string;
  readonly target: string;
  private readonly log: OutageLog;
  private readonly remindEveryMs: number;
  private readonly now: () => number;
  private downSince: number | undefined;
  private lastReminder = 0;
  private lastError: string | undefined;
  private outages = 0;
  private readonly listeners = new Set<(up: boolean) => void>();

  constructor(opts: OutageReporterOptions) {
    this.name = opts.name;
    this.target = opts.target;
    this.log = opts.log;
    this.remindEveryMs = opts.remindEveryMs ?? 30_000;
    this.now = opts.now ?? Date.now;
  }

  get up(): boolean {
    return this.downSince === undefined;
  }

  /** A failure to reach the dependency. Logs only at the start and at reminder intervals. */
  failure(err: unknown): void {
    const t = this.now();
    this.lastError = firstLine(err);
    if (this.downSince === undefined) {
      this.downSince = t;
      this.lastReminder = t;
      this.outages++;
      this.log.warn(
        { event: 'outage_started', dependency: this.name, target: this.target, err: this.lastError },
        `${this.name} is unreachable at ${this.target} (${this.lastError}); waiting for it to come back`,
      );
      this.emit(false);
      return;
    }
    if (t - this.lastReminder >= this.remindEveryMs) {
      this.lastReminder = t;
      const sec = Math.round((t - this.downSince) / 1000);
      this.log.warn(
        {
          event: 'outage_continues',
          dependency: this.name,
          target: this.target,
          downForSec: sec,
          err: this.lastError,
        },
        `${this.name} still unreachable at ${this.target} after ${sec} s (${this.lastError})`,
      );
    }
  }

  /** The dependency answered. Logs once when this ends an outage. */
  success(): void {
    if (this.downSince === undefined) return;
    const sec = Math.round((this.now() - this.downSince) / 1000);
    this.downSince = undefined;
    this.log.info(
      { event: 'outage_ended', dependency: this.name, target: this.target, downForSec: sec },
      `${this.name} is back at ${this.target} after ${sec} s`,
    );
    this.emit(true);
  }

  /** Called with false when an outage starts and true when it ends. Returns an unsubscribe. */
  onChange(fn: (up: boolean) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  state(): OutageState {
    const s: OutageState = { name: this.name, target: this.target, up: this.up, outages: this.outages };
    if (this.downSince !== undefined) {
      s.downSince = this.downSince;
      s.downForSec = Math.round((this.now() - this.downSince) / 1000);
    }
    if (this.lastError !== undefined) s.lastError = this.lastError;
    return s;
  }

  private emit(up: boolean): void {
    for (const fn of this.listeners) {
      try {
        fn(up);
      } catch {
        /* a listener never breaks the reporter */
      }
    }
  }
}

/**
 * For an emitter's 'error' events (BullMQ queues and workers, ioredis connections): connection
 * errors go to the reporter, anything else to `other` (a real error worth its own line).
 */
export function errorFunnel(reporter: OutageReporter, other: (err: Error) => void): (err: Error) => void {
  return (err) => {
    if (isConnectionError(err)) reporter.failure(err);
    else other(err);
  };
}
