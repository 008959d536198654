import type { Queue } from 'bullmq';
import type { Config } from '../src/config/schema.js';

export const REAP_SCHEDULER_ID = 'reap-orphans';
export const STUCK_SCHEDULER_ID = 'check-stuck';

const JOB_OPTS = {
  attempts: 1,
  removeOnComplete: { count: 50 },
  removeOnFail: { count: 50 },
};

/**
 * Registers the repeatable jobs of the maintenance queue. A job scheduler is an upsert keyed by id:
 * every worker may call this at start-up and there is still one schedule, producing one job per
 * slot.
 * - `reap-orphans` every `vast.reapEveryMin` (`0` removes it), only where Vast instances can exist:
 *   a worker of another driver leaves the schedule as it is;
 * - `check-stuck` (train jobs stuck in PROVISIONING, processors/stuck.ts) every
 *   `alerts.checkEverySec` whatever the driver (`0` removes it).
 */
export async function scheduleMaintenance(queue: Queue, config: Config): Promise<void> {
  if (config.train.driver === 'vast') {
    await upsertEvery(queue, REAP_SCHEDULER_ID, Math.round(config.vast.reapEveryMin * 60_000));
  }
  await upsertEvery(queue, STUCK_SCHEDULER_ID, config.alerts.checkEverySec * 1000);
}

async function upsertEvery(queue: Queue, id: string, everyMs: number): Promise<void> {
  if (everyMs <= 0) {
    await queue.removeJobScheduler(id);
    return;
  }
  await queue.upsertJobScheduler(id, { every: everyMs }, { name: id, opts: JOB_OPTS });
}
