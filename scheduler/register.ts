import { randomUUID } from 'node:crypto';
import type { JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../src/config/schema.js';
import { stableStringify } from '../src/util/stableJson.js';
import { DAILY_SCHEDULER_ID } from './slot.js';
import { scheduledJobOptions, type ScheduledRunData } from './template.js';

/** Name of the jobs the daily scheduler produces. */
export const SCHEDULED_JOB_NAME = 'daily-run';

export interface ScheduleInfo {
  id: string;
  pattern: string | undefined;
  tz: string | undefined;
  /** Epoch ms of the next slot. */
  next: number | undefined;
  data: ScheduledRunData | undefined;
}

export type EnsureAction = 'created' | 'updated' | 'repaired' | 'unchanged' | 'removed' | 'absent';

const LOCK_TTL_MS = 15_000;

/**
 * Serialises upserters: one `retrain scheduler` at a time compares and upserts, so replicas started
 * together or restarting in a loop cannot race BullMQ's upsert (taskforcesh/bullmq #2876, #3085).
 */
async function withUpsertLock<T>(redis: Redis, prefix: string, fn: () => Promise<T>): Promise<T> {
  const key = `${prefix}:schedule:upsert-lock`;
  const token = randomUUID();
  const deadline = Date.now() + 2 * LOCK_TTL_MS;
  while ((await redis.set(key, token, 'PX', LOCK_TTL_MS, 'NX')) !== 'OK') {
    if (Date.now() > deadline) throw new Error(`could not take ${key} within ${2 * LOCK_TTL_MS} ms`);
    await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
  }
  try {
    return await fn();
  } finally {
    await redis.eval(
      `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`,
      1,
      key,
      token,
    );
  }
}

export async function describeSchedule(queue: Queue): Promise<ScheduleInfo | undefined> {
  const s = await queue.getJobScheduler(DAILY_SCHEDULER_ID);
  if (!s) return undefined;
  return {
    id: s.key,
    pattern: s.pattern ?? undefined,
    tz: s.tz ?? undefined,
    next: s.next ?? undefined,
    data: s.template?.data as ScheduledRunData | undefined,
  };
}

/**
 * Makes the daily schedule match the config: upserted in place (never removed and re-added,
 * taskforcesh/bullmq #3063) when it is missing, differs, or lost its next job; left alone when it
 * already matches, so restarts and replicas change nothing. `schedule.enabled: false` removes it.
 */
export async function ensureDailySchedule(opts: {
  queue: Queue;
  redis: Redis;
  config: Config;
  data: ScheduledRunData;
}): Promise<{ action: EnsureAction; schedule: ScheduleInfo | undefined }> {
  const { queue, redis, config } = opts;
  return withUpsertLock(redis, config.queuePrefix, async () => {
    const existing = await queue.getJobScheduler(DAILY_SCHEDULER_ID);
    if (!config.schedule.enabled) {
      if (!existing) return { action: 'absent' as const, schedule: undefined };
      await queue.removeJobScheduler(DAILY_SCHEDULER_ID);
      return { action: 'removed' as const, schedule: undefined };
    }
    const jobOpts: JobsOptions = scheduledJobOptions(config);
    const want = stableStringify({
      pattern: config.schedule.cron,
      tz: config.schedule.tz,
      data: opts.data,
      opts: jobOpts,
    });
    let action: EnsureAction = 'created';
    if (existing) {
      const have = stableStringify({
        pattern: existing.pattern,
        tz: existing.tz,
        data: existing.template?.data,
        opts: existing.template?.opts,
      });
      const nextJob = existing.next
        ? await queue.getJob(`repeat:${DAILY_SCHEDULER_ID}:${existing.next}`)
        : undefined;
      if (have === want && nextJob)
        return { action: 'unchanged' as const, schedule: await describeSchedule(queue) };
      action = have === want ? 'repaired' : 'updated';
    }
    await queue.upsertJobScheduler(
      DAILY_SCHEDULER_ID,
      { pattern: config.schedule.cron, tz: config.schedule.tz },
      { name: SCHEDULED_JOB_NAME, data: opts.data, opts: jobOpts },
    );
    return { action, schedule: await describeSchedule(queue) };
  });
}

export async function removeDailySchedule(queue: Queue, redis: Redis, prefix: string): Promise<boolean> {
  return withUpsertLock(redis, prefix, async () => {
    if (!(await queue.getJobScheduler(DAILY_SCHEDULER_ID))) return false;
    await queue.removeJobScheduler(DAILY_SCHEDULER_ID);
    return true;
  });
}
