import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InstancePool } from '../../../src/compute/pool.js';
import type { LeaseInfo } from '../../../src/compute/provider.js';
import { leaseCostUsd } from '../../../src/compute/reap.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const T0 = Math.floor(Date.now() / 1000) * 1000;
const HOUR = 3_600_000;

const inst = (id: string, acquiredAt = T0, dph = 0.36): LeaseInfo => ({
  driver: 'vast',
  id,
  host: '127.0.0.1',
  port: 22,
  workRoot: '/root/retrain',
  acquiredAt: new Date(acquiredAt).toISOString(),
  hourlyCostUsd: dph,
});

describe('InstancePool (real Redis)', () => {
  let redis: Redis;
  let prefix: string;
  let pool: InstancePool;

  beforeEach(() => {
    redis = new Redis(REDIS_URL);
    prefix = `t-pool-${randomUUID().slice(0, 8)}`;
    pool = new InstancePool(redis, prefix);
  });
  afterEach(async () => {
    const found = await redis.keys(`${prefix}:*`);
    if (found.length) await redis.del(...found);
    redis.disconnect();
  });

  const rent = (id: string, jobId: string, opts: { slots?: number; runId?: string; at?: number } = {}) =>
    pool.ensureHeld({
      info: inst(id, opts.at ?? T0),
      runId: opts.runId ?? 'run1',
      slots: opts.slots ?? 1,
      expiresAt: (opts.at ?? T0) + HOUR,
      slot: 0,
      jobId,
      since: opts.at ?? T0,
      root: `/root/retrain/${jobId}`,
    });

  it('hands a released instance to the next symbol of the run, once, with the previous work root', async () => {
    await rent('11', 'train__A__20260115');
    expect(
      await pool.take({ runId: 'run1', jobId: 'train__B__20260115', needMs: 0, root: '/r/B', now: T0 + 1 }),
    ).toBeNull();
    expect(
      await pool.release({ id: '11', slot: 0, jobId: 'train__A__20260115', bad: false, now: T0 + 600_000 }),
    ).toBe('free');
    // Another run never gets it.
    expect(
      await pool.take({ runId: 'run2', jobId: 'x', needMs: 0, root: '/r/x', now: T0 + 600_001 }),
    ).toBeNull();
    // Two workers race for it: exactly one wins.
    const [a, b] = await Promise.all([
      pool.take({ runId: 'run1', jobId: 'train__B__20260115', needMs: 0, root: '/r/B', now: T0 + 610_000 }),
      pool.take({ runId: 'run1', jobId: 'train__C__20260115', needMs: 0, root: '/r/C', now: T0 + 610_000 }),
    ]);
    const won = [a, b].filter((x) => x !== null);
    expect(won).toHaveLength(1);
    expect(won[0]).toMatchObject({
      slot: 0,
      slots: 1,
      freeSince: T0 + 600_000,
      previousRoot: '/root/retrain/train__A__20260115',
    });
    expect(won[0]!.info.id).toBe('11');
    // A repeated release by the old holder does nothing to the new one.
    expect(await pool.release({ id: '11', slot: 0, jobId: 'train__A__20260115', bad: false })).toBe(
      'not_holder',
    );
    expect((await pool.describe('11'))!.holders[0]!.jobId).toMatch(/^train__[BC]__/);
  });

  it('never hands out a bad instance, nor one whose rental ends before the symbol could finish', async () => {
    await rent('21', 'A');
    await rent('22', 'B');
    expect(await pool.release({ id: '21', slot: 0, jobId: 'A', bad: true, now: T0 + 1000 })).toBe('bad');
    expect(await pool.release({ id: '22', slot: 0, jobId: 'B', bad: false, now: T0 + 1000 })).toBe('free');
    // 22 expires at T0+1h: a symbol with a 45 min limit at T0+20min does not fit.
    expect(
      await pool.take({
        runId: 'run1',
        jobId: 'C',
        needMs: 45 * 60_000,
        root: '/r/C',
        now: T0 + 20 * 60_000,
      }),
    ).toBeNull();
    const t = await pool.take({
      runId: 'run1',
      jobId: 'C',
      needMs: 45 * 60_000,
      root: '/r/C',
      now: T0 + 10 * 60_000,
    });
    expect(t!.info.id).toBe('22');
    // The bad one is claimed at once, whatever the grace.
    expect(await pool.claim('21', 3_600_000, T0 + 2000)).not.toBeNull();
    expect(await pool.runInstances('run1')).toEqual(['22']);
  });

  it('claims an idle instance only after the grace, and books its idle time', async () => {
    await rent('31', 'A');
    await pool.release({ id: '31', slot: 0, jobId: 'A', bad: false, now: T0 + 1000 });
    expect(await pool.claim('31', 60_000, T0 + 30_000)).toBeNull();
    const c = await pool.claim('31', 60_000, T0 + 61_000);
    expect(c).not.toBeNull();
    // 0.36 $/h for 100 s idle = $0.01
    expect(c!.idleUsd(T0 + 101_000)).toBeCloseTo(0.01, 10);
    expect(await pool.describe('31')).toBeNull();
    expect(await pool.claim('31', null)).toBeNull();
    // A release after the claim: the instance is not pooled any more.
    expect(await pool.release({ id: '31', slot: 0, jobId: 'A', bad: false })).toBe('gone');
  });

  it('a held instance is never claimed', async () => {
    await rent('41', 'A');
    expect(await pool.claim('41', null)).toBeNull();
    expect(await pool.describe('41')).toMatchObject({
      runId: 'run1',
      bad: false,
      holders: [{ jobId: 'A', since: T0 }],
    });
  });

  it('slots: several symbols share one instance, the busiest first, each paying its share', async () => {
    await rent('51', 'A', { slots: 2 });
    await rent('52', 'X', { slots: 2 });
    // 51 and 52 each have one free slot; B fills one, then C must go to the other instance.
    const b = await pool.take({ runId: 'run1', jobId: 'B', needMs: 0, root: '/r/B', now: T0 + 5000 });
    expect(b).toMatchObject({ slot: 1, slots: 2, freeSince: T0 });
    const c = await pool.take({ runId: 'run1', jobId: 'C', needMs: 0, root: '/r/C', now: T0 + 5000 });
    expect(c!.info.id).not.toBe(b!.info.id);
    expect(
      await pool.take({ runId: 'run1', jobId: 'D', needMs: 0, root: '/r/D', now: T0 + 5000 }),
    ).toBeNull();
    expect(await pool.freeSlots('run1')).toBe(0);
    expect(await pool.release({ id: '51', slot: 0, jobId: 'A', bad: false })).toBe('shared');
    expect(await pool.freeSlots('run1')).toBe(1);
    // A slot costs half the instance's price.
    const slotLease: LeaseInfo = {
      ...inst('51'),
      heldSince: new Date(T0).toISOString(),
      pool: { runId: 'run1', jobId: 'A', slot: 0, slots: 2 },
    };
    expect(leaseCostUsd(slotLease, new Date(T0 + HOUR))).toBeCloseTo(0.18, 10);
  });

  it('a reattach re-creates a record lost to a crash, and is refused a slot someone else holds', async () => {
    expect(await rent('61', 'A')).toBe(true);
    expect(await rent('61', 'A')).toBe(true);
    expect(await rent('61', 'Z')).toBe(false);
    await pool.remove('61');
    expect(await pool.describe('61')).toBeNull();
    expect(await pool.runInstances('run1')).toEqual([]);
  });
});
