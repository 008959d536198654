/**
 * One API budget per Vast API key, shared by every worker of every deployment through Redis: Vast
 * enforces a minimum interval between calls per endpoint and per key (vast-reality.md, "Rate
 * limits"), so workers take turns here instead of colliding there and collecting 429s.
 *
 * Each endpoint is a rate-limiter-flexible RateLimiterRedis of one point per interval. Its stock
 * script expires keys in whole seconds; ours sets the expiry in milliseconds (Vast's intervals are
 * 4.5 s, 1.5 s ...), so two granted turns are always at least the interval (+ a margin for network
 * jitter) apart. A worker that is refused sleeps until the key expires and asks again; it never
 * waits past its deadline or its AbortSignal. Without Redis the calls go out unpaced (fail open).
 *
 * The Redis key holds a hash of the API URL and key, never the key itself.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { CancelledError } from '../errors.js';
import { sleepOrCancel } from '../util/sleep.js';
import { VastRateLimitError } from './errors.js';
import { VAST_SPEC_INTERVALS_SEC, type VastEndpoint } from './limits.js';

export { endpointOf, VAST_SPEC_INTERVALS_SEC, type VastEndpoint } from './limits.js';

/**
 * The library's increment script with the expiry in milliseconds: `SET NX PX`, then count (a turn is
 * granted when the count is 1). The library only passes whole seconds, and registers the script once
 * per Redis client whatever the limiter, so the interval travels in the key (`...:<ms>`).
 */
const INCR_PX = `local ms = tonumber(string.match(KEYS[1], ':(%d+)$'))
redis.call('set', KEYS[1], 0, 'PX', ms, 'NX')
local consumed = redis.call('incrby', KEYS[1], ARGV[1])
local ttl = redis.call('pttl', KEYS[1])
if ttl == -1 then
  redis.call('pexpire', KEYS[1], ms)
  ttl = ms
end
return {consumed, ttl}`;

/** Closes an endpoint for ARGV[1] ms (unless it is closed longer already). */
const CLOSE = `
local t = redis.call('pttl', KEYS[1])
if t < tonumber(ARGV[1]) then redis.call('set', KEYS[1], 1, 'PX', ARGV[1]) end
return 1`;

export interface TurnOptions {
  signal?: AbortSignal;
  /** Epoch ms: a turn that cannot come before it is refused at once. */
  deadline?: number;
}

export interface ApiBudgetOptions {
  redis: Redis;
  apiUrl: string;
  apiKey: string;
  /** Seconds per endpoint; missing ones take Vast's spec value. */
  intervalsSec?: Partial<Record<VastEndpoint, number>>;
  /** Added to every interval: requests granted on time can still arrive closer together. */
  marginMs?: number;
  /** Intervals are divided by this (a simulator running time faster). Default 1. */
  timeScale?: number;
  /** Called with the time a caller waited for its turn (metrics). */
  onWait?: (endpoint: VastEndpoint, ms: number) => void;
}

/** A short, stable name for an API key (and URL): what the Redis keys carry instead of the key. */
export function keyFingerprint(apiUrl: string, apiKey: string): string {
  return createHash('sha256').update(`${apiUrl}\n${apiKey}`).digest('hex').slice(0, 16);
}

export class ApiBudget {
  private readonly limiters = new Map<VastEndpoint, RateLimiterRedis | null>();
  private readonly intervals: Record<VastEndpoint, number>;
  readonly keyPrefix: string;

  constructor(private readonly opts: ApiBudgetOptions) {
    this.intervals = { ...VAST_SPEC_INTERVALS_SEC, ...opts.intervalsSec };
    this.keyPrefix = `retrain:vast-budget:${keyFingerprint(opts.apiUrl, opts.apiKey)}`;
  }

  /** Milliseconds between two turns of `endpoint`, margin included (0: unlimited). */
  intervalMs(endpoint: VastEndpoint): number {
    const s = this.intervals[endpoint];
    return s > 0 ? Math.ceil((s * 1000) / (this.opts.timeScale ?? 1) + (this.opts.marginMs ?? 100)) : 0;
  }

  private limiter(endpoint: VastEndpoint): RateLimiterRedis | null {
    if (this.limiters.has(endpoint)) return this.limiters.get(endpoint)!;
    const ms = this.intervalMs(endpoint);
    const rl =
      ms > 0
        ? new RateLimiterRedis({
            storeClient: this.opts.redis,
            keyPrefix: this.keyPrefix,
            points: 1,
            // Any whole number of seconds: the script above sets the real expiry from the key.
            duration: 1,
            customIncrTtlLuaScript: INCR_PX,
          })
        : null;
    this.limiters.set(endpoint, rl);
    return rl;
  }

  private limiterKey(endpoint: VastEndpoint): string {
    return `${endpoint}:${this.intervalMs(endpoint)}`;
  }

  /**
   * After a 429: nobody calls `endpoint` for `factor` intervals. The 429 says our turns and Vast's
   * clock disagree (or another client uses the key); Vast also answers a hammered endpoint with a
   * longer penalty, which every worker retrying at once would keep renewing.
   */
  async penalize(endpoint: VastEndpoint, factor = 3): Promise<void> {
    const ms = this.intervalMs(endpoint) * factor;
    if (ms <= 0) return;
    await this.opts.redis.eval(CLOSE, 1, `${this.keyPrefix}:${this.limiterKey(endpoint)}`, String(ms));
  }

  /**
   * Waits for a turn at `endpoint`. Throws CancelledError when the signal aborts, and a retryable
   * VastRateLimitError when the next turn would come after the deadline.
   */
  async take(endpoint: VastEndpoint, opts: TurnOptions = {}): Promise<void> {
    const rl = this.limiter(endpoint);
    if (!rl) return;
    const started = Date.now();
    for (;;) {
      if (opts.signal?.aborted) throw new CancelledError();
      let waitMs: number;
      try {
        await rl.consume(this.limiterKey(endpoint), 1);
        const waited = Date.now() - started;
        if (waited > 0) this.opts.onWait?.(endpoint, waited);
        return;
      } catch (err) {
        // Redis unreachable: the call goes out unpaced rather than not at all (a 429 is retried).
        if (!(err instanceof RateLimiterRes)) return;
        waitMs = Math.max(5, err.msBeforeNext);
      }
      // A little jitter so the waiting workers do not all ask again in the same millisecond.
      const wait = waitMs + Math.floor(Math.random() * 25);
      if (opts.deadline !== undefined && Date.now() + wait > opts.deadline) {
        throw new VastRateLimitError(
          `Vast API budget: no ${endpoint} turn before the deadline (next in ${waitMs} ms)`,
        );
      }
      await sleepOrCancel(wait, opts.signal);
    }
  }
}
