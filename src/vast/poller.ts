/**
 * Batched polling: one poller per deployment reads every instance of the deployment from the v1
 * list once per interval and shares the rows through Redis. Boot waits, health checks and destroy
 * confirmations read that snapshot instead of each calling `GET /instances/{id}` (vast-reality.md,
 * "Rate limits": the limits apply to the deployment, not to a worker).
 *
 * Every process that watches an instance runs the loop; only the holder of a Redis lock (the
 * leader) calls Vast, and only while some instance is watched. After a list that took P pages the
 * leader waits P intervals, so the list calls per minute stay the same however many instances there
 * are (a row is then at most P intervals old: P = instances / 25).
 *
 *   <prefix>:vast:poll:leader    the leader's token (PX 3 intervals, renewed each tick)
 *   <prefix>:vast:poll:snapshot  JSON {at, pages, rows}: `at` is when the list was asked for
 *   <prefix>:vast:poll:watch     zset instance id -> when it was last watched (ms)
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { sleepOrCancel } from '../util/sleep.js';
import type { VastClient } from './client.js';
import type { VastInstance } from './types.js';

export interface PollSnapshot {
  /** Epoch ms when the list was asked for: a row is at least this fresh. */
  at: number;
  pages: number;
  rows: VastInstance[];
}

export interface InstancePollerOptions {
  redis: Redis;
  /** The deployment's Redis prefix (config.queuePrefix). */
  prefix: string;
  client: Pick<VastClient, 'listInstancePages'>;
  intervalMs: number;
  /** Rows whose label starts with this are the deployment's; others are left out. */
  labelPrefix: string;
  /** A watched id is forgotten after this long without being watched again (a crashed worker's). */
  watchTtlMs?: number;
  onError?: (err: unknown) => void;
  /** Called after each list the leader made (metrics, benches). */
  onPoll?: (snap: PollSnapshot) => void;
}

/** Take the lock when free, renew it when ours. */
const LEAD = `
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

const UNLEAD = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const sleep = (ms: number, signal?: AbortSignal) => sleepOrCancel(ms, signal, { unref: true });

export class InstancePoller {
  private readonly token = randomUUID();
  private running = false;
  private readonly stop = new AbortController();
  private cached: { snap: PollSnapshot | null; readAt: number } = { snap: null, readAt: 0 };

  constructor(private readonly opts: InstancePollerOptions) {}

  get intervalMs(): number {
    return this.opts.intervalMs;
  }

  private key(name: string): string {
    return `${this.opts.prefix}:vast:poll:${name}`;
  }

  /** Asks for the instance to be polled (the loop starts in this process if it has not). */
  async watch(id: number | string): Promise<void> {
    await this.opts.redis.zadd(this.key('watch'), Date.now(), String(id));
    this.start();
  }

  async unwatch(id: number | string): Promise<void> {
    await this.opts.redis.zrem(this.key('watch'), String(id));
  }

  start(): void {
    if (this.running || this.stop.signal.aborted) return;
    this.running = true;
    void this.loop();
  }

  async close(): Promise<void> {
    this.stop.abort();
    this.running = false;
    await this.opts.redis.eval(UNLEAD, 1, this.key('leader'), this.token).catch(() => undefined);
  }

  private async loop(): Promise<void> {
    while (!this.stop.signal.aborted) {
      let next = this.opts.intervalMs;
      try {
        next = await this.tick();
      } catch (err) {
        if (this.stop.signal.aborted) return;
        try {
          this.opts.onError?.(err);
        } catch {
          /* listeners never throw */
        }
      }
      await sleep(next, this.stop.signal).catch(() => undefined);
    }
  }

  /**
   * One turn of the loop: as leader with something watched, lists the instances and stores the
   * snapshot. Returns how long to wait before the next turn.
   */
  async tick(): Promise<number> {
    const { redis, intervalMs } = this.opts;
    const lead = await redis.eval(LEAD, 1, this.key('leader'), this.token, String(intervalMs * 3));
    if (lead !== 1) return intervalMs;
    const ttl = this.opts.watchTtlMs ?? 6 * 3_600_000;
    await redis.zremrangebyscore(this.key('watch'), '-inf', Date.now() - ttl);
    if ((await redis.zcard(this.key('watch'))) === 0) return intervalMs;
    const at = Date.now();
    const { instances, pages } = await this.opts.client.listInstancePages({
      turn: { signal: this.stop.signal, deadline: at + intervalMs * 3 },
    });
    const rows = instances.filter((i) => (i.label ?? '').startsWith(this.opts.labelPrefix));
    const snap: PollSnapshot = { at, pages, rows };
    await redis.set(this.key('snapshot'), JSON.stringify(snap), 'PX', intervalMs * 20);
    this.cached = { snap, readAt: Date.now() };
    try {
      this.opts.onPoll?.(snap);
    } catch {
      /* listeners never throw */
    }
    return intervalMs * Math.max(1, pages);
  }

  /** The latest snapshot (read from Redis at most four times per interval), or null. */
  async snapshot(): Promise<PollSnapshot | null> {
    if (this.cached.snap && Date.now() - this.cached.readAt < this.opts.intervalMs / 4)
      return this.cached.snap;
    const raw = await this.opts.redis.get(this.key('snapshot'));
    const snap = raw ? (JSON.parse(raw) as PollSnapshot) : null;
    this.cached = { snap, readAt: Date.now() };
    return snap;
  }

  /**
   * Waits for a snapshot asked for at or after `after` (epoch ms). Throws CancelledError on abort;
   * null when none came within timeoutMs (no leader could poll).
   */
  async fresh(
    after: number,
    opts: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<PollSnapshot | null> {
    this.start();
    const end = Date.now() + (opts.timeoutMs ?? this.opts.intervalMs * 6);
    for (;;) {
      const snap = await this.snapshot();
      if (snap && snap.at >= after) return snap;
      if (Date.now() >= end) return null;
      await sleep(
        Math.min(Math.max(50, this.opts.intervalMs / 4), Math.max(1, end - Date.now())),
        opts.signal,
      );
    }
  }

  /**
   * Resolves true once a snapshot asked for after now shows the instance gone (absent, or its
   * contract unloaded); false when none does within timeoutMs.
   */
  async confirmGone(id: number, timeoutMs: number): Promise<boolean> {
    let after = Date.now();
    const end = after + timeoutMs;
    for (;;) {
      const snap = await this.fresh(after, { timeoutMs: Math.max(0, end - Date.now()) });
      if (!snap) return false;
      const row = snap.rows.find((r) => r.id === id);
      if (!row || row.cur_state === 'unloaded') return true;
      if (Date.now() >= end) return false;
      after = snap.at + 1;
    }
  }
}
