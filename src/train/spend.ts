/**
 * What a run has spent on rentals, shared by every worker through Redis: the dollars booked for
 * leases already given back, plus what the leases still held have accrued so far (per-second
 * billing from their start). `--budget-usd` compares this with the budget before each rental.
 */
import type { Redis } from 'ioredis';
import type { LeaseInfo } from '../compute/provider.js';
import { leaseCostUsd } from '../compute/reap.js';

/** Kept long after a run ends (the run summary reads it), then dropped by Redis. */
const TTL_SEC = 30 * 24 * 3600;

export class RunSpend {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(runId: string): string {
    return `${this.prefix}:spend:${runId}`;
  }

  /** Records a lease as held (accruing) for the run. */
  async hold(runId: string, info: LeaseInfo): Promise<void> {
    if (!info.hourlyCostUsd) return;
    const field = `lease:${info.driver}:${info.id}`;
    // A pooled slot accrues from when this holder got it, at its share of the price.
    const value = JSON.stringify({
      acquiredAt: info.heldSince ?? info.acquiredAt,
      hourlyCostUsd: info.hourlyCostUsd / (info.pool?.slots ?? 1),
    });
    await this.redis.multi().hset(this.key(runId), field, value).expire(this.key(runId), TTL_SEC).exec();
  }

  /** Books a lease's final cost and stops counting it as held. */
  async book(runId: string, info: LeaseInfo, usd: number): Promise<void> {
    // A free host (local, ssh) was never held here and costs nothing: no round trip per symbol.
    if (!info.hourlyCostUsd && !(usd > 0)) return;
    const field = `lease:${info.driver}:${info.id}`;
    const m = this.redis.multi().hdel(this.key(runId), field);
    if (usd > 0) m.hincrbyfloat(this.key(runId), 'booked', usd);
    await m.expire(this.key(runId), TTL_SEC).exec();
  }

  /**
   * Books what the run's pooled instances cost while no symbol held them (boot of spare slots, idle
   * between symbols, idle before being destroyed): counted in the run's spend and summary.
   */
  async bookPoolIdle(runId: string, usd: number): Promise<void> {
    if (!(usd > 0)) return;
    await this.redis
      .multi()
      .hincrbyfloat(this.key(runId), 'booked', usd)
      .hincrbyfloat(this.key(runId), 'poolIdle', usd)
      .expire(this.key(runId), TTL_SEC)
      .exec();
  }

  /** Dollars of the run's pooled instances that no symbol was billed for (see bookPoolIdle). */
  async poolIdle(runId: string): Promise<number> {
    return Number(await this.redis.hget(this.key(runId), 'poolIdle')) || 0;
  }

  /** Dollars spent by the run: booked plus accrued on leases still held. */
  async spent(runId: string, now: Date = new Date()): Promise<number> {
    const all = await this.redis.hgetall(this.key(runId));
    let total = Number(all.booked ?? 0) || 0;
    for (const [field, value] of Object.entries(all)) {
      if (!field.startsWith('lease:')) continue;
      try {
        const l = JSON.parse(value) as { acquiredAt: string; hourlyCostUsd: number };
        total += leaseCostUsd(
          {
            driver: 'vast',
            id: field,
            host: '',
            workRoot: '',
            acquiredAt: l.acquiredAt,
            hourlyCostUsd: l.hourlyCostUsd,
          },
          now,
        );
      } catch {
        /* a malformed field counts for nothing */
      }
    }
    return total;
  }
}
