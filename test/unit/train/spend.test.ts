/**
 * The run's spend in Redis: a priced lease is held (accruing) until booked, its cost then counts as
 * booked; a free host (local, ssh) leaves nothing behind and books nothing.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { LeaseInfo } from '../../../src/compute/provider.js';
import { RunSpend } from '../../../src/train/spend.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('RunSpend (real Redis)', () => {
  let redis: Redis;
  const prefix = `spend-test-${process.pid}-${Date.now()}`;
  beforeAll(() => {
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  const lease = (over: Partial<LeaseInfo>): LeaseInfo => ({
    driver: 'vast',
    id: '42',
    host: 'h',
    workRoot: '/w',
    acquiredAt: new Date(Date.now() - 3600_000).toISOString(),
    hourlyCostUsd: 0.5,
    ...over,
  });

  it('holds a priced lease until it is booked, then counts what it cost', async () => {
    const spend = new RunSpend(redis, prefix);
    const info = lease({});
    await spend.hold('r1', info);
    expect(await spend.spent('r1')).toBeCloseTo(0.5, 2); // an hour at $0.50, accruing
    await spend.book('r1', info, 0.5);
    expect(await redis.hkeys(`${prefix}:spend:r1`)).toEqual(['booked']);
    expect(await spend.spent('r1')).toBeCloseTo(0.5, 6);
    expect(await redis.ttl(`${prefix}:spend:r1`)).toBeGreaterThan(0);
  });

  it('a free host writes nothing, and its release books nothing', async () => {
    const spend = new RunSpend(redis, prefix);
    const info = lease({ driver: 'local', id: 'local', hourlyCostUsd: 0 });
    const multi = vi.spyOn(redis, 'multi');
    await spend.hold('r2', info);
    await spend.book('r2', info, 0);
    expect(multi).not.toHaveBeenCalled(); // not even a round trip, once per symbol
    multi.mockRestore();
    expect(await redis.exists(`${prefix}:spend:r2`)).toBe(0);
    expect(await spend.spent('r2')).toBe(0);
  });
});
