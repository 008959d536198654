import type { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../src/config/schema.js';
import type { Notifier } from '../src/notify/index.js';
import type { LogHub } from '../src/telemetry/logger.js';
import { claimStuckAlert, provisioningStuck, type StuckProvisioning } from '../src/train/stuck.js';
import type { TrainJobData } from '../src/train/types.js';
import { humanDuration } from '../src/notify/format.js';

export const PROVISIONING_STUCK_EVENT = 'provisioning.stuck';

/** Active jobs read per page. */
const PAGE = 500;

/**
 * One pass over the running train jobs: each one in PROVISIONING past its limit (src/train/stuck.ts)
 * is claimed in Redis (one claim per job attempt, shared by every worker and every pass), logged as
 * `provisioning.stuck` in its date's engine.log and sent to Telegram, one message per run. Only
 * active jobs count: a waiting or delayed one (a retry's backoff, a hand-back) is not provisioning.
 * Returns what this pass reported (claimed elsewhere or earlier: not reported again).
 */
export async function checkStuckProvisioning(deps: {
  config: Config;
  trainQueue: Queue;
  redis: Redis;
  notifier?: Notifier;
  logs?: LogHub;
  log: Logger;
  now?: () => Date;
}): Promise<StuckProvisioning[]> {
  const { config, trainQueue, redis } = deps;
  const now = deps.now ?? (() => new Date());
  const found: StuckProvisioning[] = [];
  for (let start = 0; ; start += PAGE) {
    const jobs = (await trainQueue.getJobs(['active'], start, start + PAGE - 1)) as (
      Job<TrainJobData> | undefined
    )[];
    for (const job of jobs) {
      const stuck = job ? provisioningStuck(job.data, config, now()) : null;
      if (stuck) found.push(stuck);
    }
    if (jobs.length < PAGE) break;
  }
  const reported: StuckProvisioning[] = [];
  for (const s of found) {
    if (!(await claimStuckAlert(redis, config.queuePrefix, s))) continue;
    reported.push(s);
    const log = deps.logs ? deps.logs.forDate(s.date) : deps.log;
    log.warn(
      {
        event: PROVISIONING_STUCK_EVENT,
        runId: s.runId,
        symbol: s.symbol,
        jobId: s.jobId,
        attempt: s.attempt,
        driver: s.driver,
        since: s.since,
        stuckSec: s.stuckSec,
        limitSec: s.limitSec,
        ...(s.instance ? { instance: s.instance } : {}),
      },
      `${s.symbol} stuck in PROVISIONING for ${humanDuration(s.stuckSec)} (limit ${humanDuration(s.limitSec)})`,
    );
  }
  if (reported.length > 0) deps.notifier?.provisioningStuck(reported);
  return reported;
}
