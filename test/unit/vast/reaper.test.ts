/** The reaper's ownership rules, with a fake account and a fake train queue. */
import type { Queue } from 'bullmq';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { reapDeployment } from '../../../processors/reaper.js';
import { loadConfig } from '../../../src/config/load.js';
import type { VastInstance } from '../../../src/vast/types.js';

const NOW = Date.now();
const config = loadConfig({ env: { RETRAIN_HOME: '/tmp/retrain-reaper-test' } });

function instance(id: number, label: string | null, ageMin: number): VastInstance {
  return {
    id,
    label,
    start_date: (NOW - ageMin * 60_000) / 1000,
    dph_total: 0.3,
    actual_status: 'running',
  } as unknown as VastInstance;
}

function fakeQueue(jobs: Record<string, { state: string; leaseId?: string }>): Queue {
  return {
    getJob: async (id: string) => {
      const j = jobs[id];
      if (!j) return undefined;
      return {
        getState: async () => j.state,
        data: { facts: j.leaseId ? { lease: { driver: 'vast', id: j.leaseId } } : {} },
      };
    },
  } as unknown as Queue;
}

async function reap(
  instances: VastInstance[],
  jobs: Record<string, { state: string; leaseId?: string }>,
  failing: number[] = [],
) {
  const destroyed: number[] = [];
  const result = await reapDeployment({
    config,
    client: {
      listInstances: async () => instances,
      destroyInstance: async (id: number) => {
        if (failing.includes(id)) throw new Error(`destroy of ${id} not confirmed`);
        destroyed.push(id);
      },
    },
    trainQueue: fakeQueue(jobs),
    dryRun: false,
    log: pino({ level: 'silent' }),
  });
  return { result, destroyed };
}

const label = (jobId: string) => `retrain-${config.deployment}-${jobId}`;

describe('reapDeployment', () => {
  it('keeps an instance its live job holds; destroys one whose job is gone or finished', async () => {
    const { destroyed, result } = await reap(
      [
        instance(1, label('train__AAA__20260101'), 30),
        instance(2, label('train__BBB__20260101'), 30),
        instance(3, label('train__CCC__20260101'), 30),
      ],
      {
        train__AAA__20260101: { state: 'active', leaseId: '1' },
        train__CCC__20260101: { state: 'completed', leaseId: '3' },
      },
    );
    expect(destroyed).toEqual([2, 3]);
    expect(result.kept.map((k) => k.id)).toEqual(['1']);
    expect(result.destroyed.map((d) => d.reason)).toEqual(['no_active_job', 'no_active_job']);
  });

  it('destroys a leftover of a live job that now holds another instance, but not a brand-new one', async () => {
    const { destroyed } = await reap(
      [
        instance(10, label('train__AAA__20260101'), 20), // an earlier attempt's instance
        instance(11, label('train__AAA__20260101'), 1), // just created, not recorded yet
        instance(12, label('train__AAA__20260101'), 15), // the one the job holds
      ],
      { train__AAA__20260101: { state: 'active', leaseId: '12' } },
    );
    expect(destroyed).toEqual([10]);
  });

  it('destroys anything past maxRuntimeMin, even held by a live job, and leaves other labels alone', async () => {
    const { destroyed, result } = await reap(
      [
        instance(20, label('train__AAA__20260101'), config.vast.maxRuntimeMin + 1),
        instance(21, 'someone-else', 500),
        instance(22, null, 500),
      ],
      { train__AAA__20260101: { state: 'active', leaseId: '20' } },
    );
    expect(destroyed).toEqual([20]);
    expect(result.destroyed[0]!.reason).toBe('max_runtime');
    expect(result.kept).toEqual([]);
  });

  it('a destroy that fails is reported and does not stop the others', async () => {
    const { destroyed, result } = await reap(
      [instance(30, label('train__X__20260101'), 30), instance(31, label('train__Y__20260101'), 30)],
      {},
      [30],
    );
    expect(destroyed).toEqual([31]);
    expect(result.failed).toMatchObject([{ id: '30', reason: 'no_active_job' }]);
  });
});

describe('reapDeployment with the instance pool (real Redis)', () => {
  it('keeps a pooled instance held by a live job or idle within the grace; destroys one idle past it and books its idle time', async () => {
    const { Redis } = await import('ioredis');
    const { InstancePool } = await import('../../../src/compute/pool.js');
    const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    const prefix = `t-reap-pool-${Date.now()}`;
    const pool = new InstancePool(redis, prefix);
    const grace = config.vast.pool.idleGraceSec * 1000;
    try {
      const record = async (id: string, jobId: string, since: number) => {
        await pool.ensureHeld({
          info: {
            driver: 'vast',
            id,
            host: '',
            workRoot: '/root/retrain',
            acquiredAt: new Date(NOW - 30 * 60_000).toISOString(),
            hourlyCostUsd: 0.36,
          },
          runId: 'run-r',
          slots: 1,
          expiresAt: NOW + 30 * 60_000,
          slot: 0,
          jobId,
          since,
          root: `/root/retrain/${jobId}`,
        });
      };
      // 21: held by a live job that records it (its label still names the previous holder).
      await record('21', 'train__BBB__20260101', NOW - 20 * 60_000);
      // 22: idle a moment ago; 23: idle for far longer than the grace (its worker died).
      await record('22', 'train__CCC__20260101', NOW - 20 * 60_000);
      await pool.release({ id: '22', slot: 0, jobId: 'train__CCC__20260101', bad: false, now: NOW - 1000 });
      await record('23', 'train__DDD__20260101', NOW - 20 * 60_000);
      const idleSince = NOW - grace - 6 * 60_000;
      await pool.release({ id: '23', slot: 0, jobId: 'train__DDD__20260101', bad: false, now: idleSince });
      const booked: [string, number][] = [];
      const destroyed: number[] = [];
      await reapDeployment({
        config,
        client: {
          listInstances: async () => [
            instance(21, label('train__AAA__20260101'), 30),
            instance(22, label('train__CCC__20260101'), 30),
            instance(23, label('train__DDD__20260101'), 30),
          ],
          destroyInstance: async (id: number) => void destroyed.push(id),
        },
        trainQueue: fakeQueue({
          train__BBB__20260101: { state: 'active', leaseId: '21' },
          train__CCC__20260101: { state: 'completed' },
          train__DDD__20260101: { state: 'completed' },
        }),
        dryRun: false,
        log: pino({ level: 'silent' }),
        pool,
        bookIdle: async (runId, usd) => void booked.push([runId, usd]),
      });
      expect(destroyed).toEqual([23]);
      expect(await pool.describe('23')).toBeNull();
      expect(await pool.describe('22')).not.toBeNull();
      expect(booked).toHaveLength(1);
      expect(booked[0]![0]).toBe('run-r');
      expect(booked[0]![1]).toBeCloseTo((0.36 * (NOW - idleSince)) / 3_600_000, 3);
    } finally {
      const found = await redis.keys(`${prefix}:*`);
      if (found.length) await redis.del(...found);
      redis.disconnect();
    }
  });
});
