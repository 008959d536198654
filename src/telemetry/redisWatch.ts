import { Redis } from 'ioredis';
import { displayUrl } from '../util/displayUrl.js';
import { errorFunnel, OutageReporter, type OutageLog } from './outage.js';

export interface RedisWatchOptions {
  url: string;
  log: OutageLog & { warn(fields: Record<string, unknown>, msg: string): void };
  /** How often a PING checks Redis while nothing else says anything. Default 2 s. */
  probeEveryMs?: number;
  remindEveryMs?: number;
}

interface ErrorEmitter {
  on(event: 'error', fn: (err: Error) => void): unknown;
}

/**
 * Redis's one outage reporter for a process. Every queue, worker and connection hands its 'error'
 * events to `watch` (connection errors are counted, not logged one by one), and a PING on a
 * fail-fast connection of its own decides when Redis is back, and answers /healthz.
 */
export class RedisWatch {
  readonly outage: OutageReporter;
  private readonly probe: Redis;
  private readonly timer: NodeJS.Timeout;
  private readonly log: RedisWatchOptions['log'];
  /** The probe's last connection error, until it is connected again. */
  private connError: Error | undefined;

  constructor(opts: RedisWatchOptions) {
    this.log = opts.log;
    this.outage = new OutageReporter({
      name: 'Redis',
      target: displayUrl(opts.url),
      log: opts.log,
      ...(opts.remindEveryMs !== undefined ? { remindEveryMs: opts.remindEveryMs } : {}),
    });
    this.probe = new Redis(opts.url, {
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      connectTimeout: 2000,
      // Reconnects forever, but never faster than the probe itself.
      retryStrategy: (n) => Math.min(250 * n, 2000),
    });
    this.probe.on('error', (err) => {
      this.connError = err;
      this.outage.failure(err);
    });
    this.probe.on('ready', () => (this.connError = undefined));
    const every = opts.probeEveryMs ?? 2000;
    this.timer = setInterval(() => void this.ping(), every);
    this.timer.unref();
  }

  /** Funnels an emitter's 'error' events: connection errors to the outage, others logged as `what`. */
  watch(emitter: ErrorEmitter, what: string): void {
    emitter.on('error', this.errorHandler(what));
  }

  /** The handler `watch` attaches, for emitters made elsewhere. */
  errorHandler(what: string): (err: Error) => void {
    return errorFunnel(this.outage, (err) =>
      this.log.warn({ source: what, err: err.message }, `${what} error`),
    );
  }

  /** PING within `timeoutMs`; records the answer with the outage reporter. Never throws. */
  async ping(timeoutMs = 1500): Promise<boolean> {
    let t: NodeJS.Timeout | undefined;
    try {
      const answer = await Promise.race([
        this.probe.ping(),
        new Promise<never>((_, reject) => {
          t = setTimeout(() => reject(new Error(`no answer to PING within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      if (answer !== 'PONG') throw new Error(`PING answered ${String(answer)}`);
      this.outage.success();
      return true;
    } catch (err) {
      // Not connected: ioredis's "Stream isn't writeable..." says less than the connection's own
      // error, which its next reconnection attempt reports.
      this.outage.failure(this.probe.status === 'ready' ? err : await this.whyNotConnected(timeoutMs));
      return false;
    } finally {
      if (t) clearTimeout(t);
    }
  }

  /** The probe's connection error: the last one, else the next within `waitMs`. */
  private whyNotConnected(waitMs: number): Promise<Error> {
    if (this.connError) return Promise.resolve(this.connError);
    return new Promise((resolve) => {
      const done = (err: Error) => {
        clearTimeout(timer);
        this.probe.off('error', done);
        resolve(err);
      };
      const timer = setTimeout(() => done(new Error(`not connected (${this.probe.status})`)), waitMs);
      this.probe.on('error', done);
    });
  }

  /** The /healthz line for Redis: a fresh PING, and the outage's length when it fails. */
  async check(): Promise<{ ok: boolean; [k: string]: unknown }> {
    const ok = await this.ping(1000);
    const st = this.outage.state();
    return ok
      ? { ok, target: st.target }
      : { ok, target: st.target, downForSec: st.downForSec, error: st.lastError };
  }

  close(): void {
    clearInterval(this.timer);
    this.probe.disconnect();
  }
}
