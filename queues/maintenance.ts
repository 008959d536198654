import type { Queue } from 'bullmq';
import type { Config } from '../src/config/schema.js';

export const REAP_SCHEDULER_ID = 'reap-orphans';

/**
 * Registers the repeatable reaper pass (every `vast.reapEveryMin`) on the maintenance queue. A job
 * scheduler is an upsert keyed by id: every worker may call this at start-up and there is still one
 * schedule, producing one job per slot. `reapEveryMin: 0` removes it.
 */
export async function scheduleMaintenance(queue: Queue, config: Config): Promise<void> {
  const everyMs = Math.round(config.vast.reapEveryMin * 60_000);
  if (everyMs <= 0) {
    await queue.removeJobScheduler(REAP_SCHEDULER_ID);
    return;
  }
  await queue.upsertJobScheduler(
    REAP_SCHEDULER_ID,
    { every: everyMs },
    {
      name: REAP_SCHEDULER_ID,
      opts: {
        attempts: 1,
        removeOnComplete: { count: 50 },
        removeOnFail: { count: 50 },
      },
    },
  );
}
