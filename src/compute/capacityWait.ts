/**
 * No capacity is a wait, not a failure. A symbol whose acquire finds no offer and no pooled instance
 * (NoCapacityError) waits here: it searches again with jittered backoff until a pooled instance is
 * free for it, an offer appears, or its wait limit passes. The wait is part of one attempt, so it
 * uses up none of the symbol's retries.
 *
 * Searching is shared, never hammered: every search goes through the Vast client (its API budget),
 * and waiters of the whole deployment take turns through a Redis gate, at most one waiter's search
 * per gate interval however many wait. A waiter of a pooled run wakes at once when a slot frees.
 *
 * Redis (every worker shares it):
 *   <prefix>:capacity:<runId>:waiting  zset jobId → since (ms): the run's waiters
 *   <prefix>:capacity:<runId>:got      ms of the run's last GPU got (rented or pooled)
 *   <prefix>:capacity:<runId>:alerted  set once: the run's no-capacity alert went out
 *   <prefix>:capacity:search-gate      the deployment's search turn (PX the gate interval)
 */
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import { CancelledError, NoCapacityError } from '../errors.js';
import type { JobSpec } from '../jobspec/types.js';
import type { AcquireContext, ComputeProvider, Lease, LeaseInfo, ReleaseHint } from './provider.js';

/** What the run-level alert says: the run has got no GPU for `minutes` while symbols waited. */
export interface NoCapacityAlert {
  runId: string;
  /** YYYYMMDD */
  date: string;
  /** Since when the run has got no GPU with symbols waiting (ISO). */
  since: string;
  minutes: number;
  /** Symbols waiting now. */
  waiting: number;
  /** The constraints no offer met. */
  unmet: string;
}

export interface CapacityWaitOptions {
  config: Config;
  inner: ComputeProvider;
  redis: Redis;
  /** Free slots of the run's pooled instances (pool on): a waiter wakes as soon as one frees. */
  freeSlots?: (runId: string) => Promise<number>;
  /** The run's one no-capacity alert (claimed in Redis: one per run across every worker). Never throws. */
  onNoCapacity?: (alert: NoCapacityAlert) => void;
  onEvent?: (event: string, data: Record<string, unknown>) => void;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  random?: () => number;
}

const TTL_SEC = 3 * 86400;
/** The longest single pause, as a multiple of capacityPollSec. */
const MAX_BACKOFF = 4;

const defaultSleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(new CancelledError('capacity wait cancelled'));
    const t = setTimeout(() => (signal.removeEventListener('abort', onAbort), resolve()), ms);
    const onAbort = () => (clearTimeout(t), reject(new CancelledError('capacity wait cancelled')));
    signal.addEventListener('abort', onAbort, { once: true });
  });

/**
 * When a symbol that started waiting at `since` stops waiting: `vast.capacityWaitMin` after it (never
 * past the attempt's deadline), or, unset, the attempt's deadline less a margin for the training it
 * needs: a third of its time limit, and at least one boot deadline.
 */
export function capacityWaitUntil(
  config: Config,
  spec: Pick<JobSpec, 'timeoutMinutes'>,
  since: number,
  deadline?: number,
): number {
  const limitMs = spec.timeoutMinutes * 60_000;
  const end = deadline ?? since + limitMs;
  const set = config.vast.capacityWaitMin;
  if (set !== undefined) return Math.min(since + set * 60_000, end);
  const margin = Math.max(limitMs / 3, config.vast.bootDeadlineSec * 1000);
  return end - margin;
}

/** How many symbols of a run wait for capacity now (they also wait for a pooled instance). */
export function capacityWaiting(redis: Redis, prefix: string, runId: string): Promise<number> {
  return redis.zcard(`${prefix}:capacity:${runId}:waiting`);
}

/** The symbol's wait limit passed with no GPU: a final, non-retried failure naming what no offer met. */
function limitReached(symbol: string, waitedMs: number, unmet: string): NoCapacityError {
  const min = (waitedMs / 60_000).toFixed(1);
  return new NoCapacityError(
    `${symbol}: no GPU after waiting ${min} min for capacity (its wait limit): no offer met ${unmet}`,
    unmet,
  );
}

export class CapacityWaitProvider implements ComputeProvider {
  readonly driver: ComputeProvider['driver'];
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly random: () => number;

  constructor(private readonly opts: CapacityWaitOptions) {
    this.driver = opts.inner.driver;
    this.sleep = opts.sleep ?? defaultSleep;
    this.random = opts.random ?? Math.random;
  }

  /** The provider this one waits in front of (the pool's drain, the reaper). */
  get inner(): ComputeProvider {
    return this.opts.inner;
  }

  private key(runId: string, what: 'waiting' | 'got' | 'alerted'): string {
    return `${this.opts.config.queuePrefix}:capacity:${runId}:${what}`;
  }

  private emit(event: string, data: Record<string, unknown>): void {
    try {
      this.opts.onEvent?.(event, data);
    } catch {
      /* listeners never throw */
    }
  }

  async acquire(spec: JobSpec, ctx: AcquireContext): Promise<Lease> {
    const runId = ctx.runId ?? spec.date;
    const pollMs = this.opts.config.vast.capacityPollSec * 1000;
    let since: number | undefined;
    let delay = pollMs;
    let outcome: Extract<Parameters<NonNullable<AcquireContext['onCapacity']>>[0], { state: 'done' }> = {
      state: 'done',
      waitedMs: 0,
    };
    try {
      for (;;) {
        let unmet: string;
        try {
          const lease = await this.opts.inner.acquire(spec, ctx);
          await this.opts.redis.set(this.key(runId, 'got'), String(Date.now()), 'EX', TTL_SEC);
          outcome = {
            state: 'done',
            waitedMs: since === undefined ? 0 : Date.now() - since,
            ...(since !== undefined ? { since: new Date(since).toISOString() } : {}),
            ...(lease.info.gpu ? { gpu: lease.info.gpu } : {}),
            ...(lease.info.gpuClass ? { gpuClass: lease.info.gpuClass } : {}),
          };
          return lease;
        } catch (err) {
          if (!(err instanceof NoCapacityError)) throw err;
          unmet = err.unmet;
        }
        const now = Date.now();
        if (since === undefined) {
          since = now;
          await this.opts.redis
            .multi()
            .zadd(this.key(runId, 'waiting'), now, spec.jobId)
            .expire(this.key(runId, 'waiting'), TTL_SEC)
            .exec();
          await ctx.onCapacity?.({ state: 'waiting', since: new Date(now).toISOString(), unmet });
          this.emit('capacity.waiting', { runId, symbol: spec.symbol, jobId: spec.jobId, unmet });
        }
        outcome = { state: 'done', waitedMs: now - since, since: new Date(since).toISOString() };
        const until = capacityWaitUntil(this.opts.config, spec, since, ctx.deadline);
        if (now >= until) throw limitReached(spec.symbol, now - since, unmet);
        await this.maybeAlert(runId, spec.date, unmet);
        const jittered = delay * (0.7 + 0.6 * this.random());
        // No turn before the limit: fail without one more search (waiters reaching their limits
        // together would otherwise all search at once, past the gate).
        if (!(await this.nap(runId, Math.min(jittered, until - now), until, ctx.signal))) {
          outcome = { ...outcome, waitedMs: Date.now() - since };
          throw limitReached(spec.symbol, outcome.waitedMs, unmet);
        }
        delay = Math.min(delay * 1.5, pollMs * MAX_BACKOFF);
      }
    } finally {
      if (since !== undefined) {
        await this.opts.redis.zrem(this.key(runId, 'waiting'), spec.jobId).catch(() => undefined);
        this.emit('capacity.wait_ended', {
          runId,
          symbol: spec.symbol,
          jobId: spec.jobId,
          waitedSec: Math.round(outcome.waitedMs / 1000),
          got: outcome.gpu !== undefined || outcome.gpuClass !== undefined,
        });
      }
      await ctx.onCapacity?.(outcome).catch(() => undefined);
    }
  }

  /**
   * Sleeps about `ms`, waking early when a slot of the run's pool frees; then waits for the
   * deployment's search turn (or `until`) so that however many symbols wait, search is not hammered.
   */
  private async nap(runId: string, ms: number, until: number, signal: AbortSignal): Promise<boolean> {
    const free = async () => (this.opts.freeSlots ? await this.opts.freeSlots(runId).catch(() => 0) : 0);
    // Only a slot freed while napping wakes it (one it could not take before would wake it forever).
    const seen = await free();
    const tick = Math.min(1000, Math.max(50, ms));
    const end = Date.now() + ms;
    while (Date.now() < end) {
      await this.sleep(Math.min(tick, Math.max(0, end - Date.now())), signal);
      if (this.opts.freeSlots && (await free()) > seen) return true;
    }
    const gateMs = Math.max(100, Math.round((this.opts.config.vast.capacityPollSec * 1000) / 4));
    const gate = `${this.opts.config.queuePrefix}:capacity:search-gate`;
    while (Date.now() < until) {
      if ((await this.opts.redis.set(gate, runId, 'PX', gateMs, 'NX')) === 'OK') return true;
      if (this.opts.freeSlots && (await free()) > seen) return true;
      await this.sleep(Math.min(gateMs * (0.5 + this.random()), Math.max(0, until - Date.now())), signal);
    }
    return false;
  }

  /**
   * One alert per run when its symbols have waited and it has got not one GPU for alerts.noCapacityMin
   * (measured from the later of its earliest current waiter and its last GPU got).
   */
  private async maybeAlert(runId: string, date: string, unmet: string): Promise<void> {
    const { redis, config } = this.opts;
    if (!this.opts.onNoCapacity) return;
    const [first, got, waiting] = await Promise.all([
      redis.zrange(this.key(runId, 'waiting'), 0, 0, 'WITHSCORES'),
      redis.get(this.key(runId, 'got')),
      redis.zcard(this.key(runId, 'waiting')),
    ]);
    if (first.length < 2) return;
    const from = Math.max(Number(first[1]), Number(got ?? 0));
    const minutes = (Date.now() - from) / 60_000;
    if (minutes < config.alerts.noCapacityMin) return;
    const claimed = await redis.set(this.key(runId, 'alerted'), String(Date.now()), 'EX', TTL_SEC, 'NX');
    if (claimed !== 'OK') return;
    this.emit('capacity.none', { runId, since: new Date(from).toISOString(), waiting, unmet });
    try {
      this.opts.onNoCapacity({
        runId,
        date,
        since: new Date(from).toISOString(),
        minutes,
        waiting,
        unmet,
      });
    } catch {
      /* never throws */
    }
  }

  reattach(info: LeaseInfo, signal?: AbortSignal): Promise<Lease | null> {
    return this.opts.inner.reattach(info, signal);
  }

  isAlive(info: LeaseInfo): Promise<boolean> {
    return this.opts.inner.isAlive ? this.opts.inner.isAlive(info) : Promise.resolve(true);
  }

  lostReason(info: LeaseInfo): 'preempted' | undefined {
    return this.opts.inner.lostReason?.(info);
  }

  release(info: LeaseInfo, hint?: ReleaseHint): Promise<void> {
    return this.opts.inner.release(info, hint);
  }

  list(): Promise<LeaseInfo[]> {
    return this.opts.inner.list();
  }

  async close(): Promise<void> {
    await this.opts.inner.close?.();
  }
}
