import { Queue, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../src/config/schema.js';
import type { LeaseInfo } from '../src/compute/provider.js';
import type { InstancePool } from '../src/compute/pool.js';
import { reapOrphans, type ReapResult } from '../src/compute/reap.js';
import { deploymentInstances, jobIdFromLabel } from '../src/compute/vast.js';
import type { Notifier } from '../src/notify/index.js';
import { EVENTS } from '../src/telemetry/events.js';
import type { LogHub } from '../src/telemetry/logger.js';
import type { TrainJobData } from '../src/train/types.js';
import type { VastClient } from '../src/vast/client.js';
import { REAP_SCHEDULER_ID, STUCK_SCHEDULER_ID } from '../queues/maintenance.js';
import { checkStuckProvisioning } from './stuck.js';

/** Job states in which a train job may legitimately hold an instance. */
const LIVE = new Set(['active', 'waiting', 'delayed', 'prioritized', 'waiting-children']);

/**
 * An instance younger than this is never taken for an orphan of a live job: it may have been created
 * a moment ago, before its job recorded it.
 */
export const REAP_GRACE_MIN = 5;

/**
 * One reaper pass over this deployment's Vast instances. An instance is in use only while its job
 * (named by the label) is live *and* holds that very instance (or the instance is too young to be
 * recorded yet). Everything else, and anything past maxRuntimeMin, is destroyed (and confirmed
 * gone), each logged as `instance_destroyed` with its reason.
 */
export async function reapDeployment(opts: {
  config: Config;
  client: Pick<VastClient, 'listInstances' | 'destroyInstance'>;
  trainQueue: Queue;
  dryRun: boolean;
  log: Logger;
  /** The instance pool (when on): a pooled instance is in use while a live job holds one of its
   * slots, or while it has been idle less than idleGraceSec. */
  pool?: InstancePool;
  /** Books a reaped pooled instance's idle time to its run. */
  bookIdle?: (runId: string, usd: number) => Promise<void>;
}): Promise<ReapResult> {
  const { config, client, trainQueue, log, pool } = opts;
  const holds = async (jobId: string, instanceId: string) => {
    const job: Job<TrainJobData> | undefined = await trainQueue.getJob(jobId);
    if (!job || !LIVE.has(await job.getState())) return false;
    const held = job.data?.facts?.lease;
    return held?.driver === 'vast' && held.id === instanceId;
  };
  const graceMs = config.vast.pool.idleGraceSec * 1000;
  const result = await reapOrphans({
    provider: {
      list: () => deploymentInstances(client, config),
      release: async (lease) => client.destroyInstance(Number(lease.id)),
    },
    jobIdOf: (lease) => jobIdFromLabel(config.deployment, lease.label),
    isInUse: async (lease: LeaseInfo, jobId: string, ageMin: number) => {
      const rec = pool ? await pool.describe(lease.id) : null;
      if (pool && rec) {
        const now = Date.now();
        const held = rec.holders.filter((h) => h.jobId);
        if (held.length === 0) {
          // Idle in the pool: kept for its grace (its taker may be on the way), then destroyed here
          // when the worker that pooled it could not (it crashed).
          if (now - Math.max(...rec.holders.map((h) => h.since)) < graceMs + REAP_GRACE_MIN * 60_000)
            return true;
          if (opts.dryRun) return false;
          const claimed = await pool.claim(lease.id, graceMs);
          if (!claimed) return true; // taken meanwhile
          await opts.bookIdle?.(claimed.runId, claimed.idleUsd(now)).catch(() => undefined);
          return false;
        }
        for (const h of held) {
          if (now - h.since < REAP_GRACE_MIN * 60_000 || (await holds(h.jobId, lease.id))) return true;
        }
        if (!opts.dryRun) await pool.remove(lease.id);
        return false;
      }
      const job: Job<TrainJobData> | undefined = await trainQueue.getJob(jobId);
      if (!job || !LIVE.has(await job.getState())) return false;
      const held = job.data?.facts?.lease;
      return (held?.driver === 'vast' && held.id === lease.id) || ageMin < REAP_GRACE_MIN;
    },
    maxRuntimeMin: config.vast.maxRuntimeMin,
    dryRun: opts.dryRun,
    onDestroyed: (lease, reason) =>
      log.warn(
        {
          event: EVENTS.instanceDestroyed,
          instance: Number(lease.id),
          label: lease.label,
          reason,
          by: 'reaper',
        },
        `reaper destroyed instance ${lease.id} (${lease.label ?? 'no label'}): ${reason}`,
      ),
  });
  // Pooled instances destroyed here (past maxRuntimeMin, orphaned) are out of the pool.
  if (pool && !opts.dryRun) for (const d of result.destroyed) await pool.remove(d.id).catch(() => undefined);
  for (const f of result.failed) {
    log.error(
      {
        event: 'instance.reap_failed',
        instance: Number(f.id),
        label: f.label,
        reason: f.reason,
        err: f.error,
      },
      `reaper could not destroy instance ${f.id}: ${f.error}`,
    );
  }
  return result;
}

/**
 * The `maintenance` processor: the repeatable jobs of queues/maintenance.ts. `reap-orphans` is the
 * reaper pass (a worker without a Vast client skips it); `check-stuck` reports train jobs stuck in
 * PROVISIONING (processors/stuck.ts).
 */
export function createMaintenanceProcessor(deps: {
  config: Config;
  /** Absent where the driver is not vast. */
  client?: Pick<VastClient, 'listInstances' | 'destroyInstance'> | undefined;
  trainQueue: Queue;
  log: Logger;
  /** For `check-stuck`: the claims (one alert per job attempt). */
  redis?: Redis;
  notifier?: Notifier;
  logs?: LogHub;
  pool?: InstancePool;
  bookIdle?: (runId: string, usd: number) => Promise<void>;
}) {
  return async (job: Job): Promise<Record<string, number | boolean>> => {
    if (job.name === STUCK_SCHEDULER_ID) {
      if (!deps.redis) return { skipped: true };
      const reported = await checkStuckProvisioning({
        config: deps.config,
        trainQueue: deps.trainQueue,
        redis: deps.redis,
        log: deps.log,
        ...(deps.notifier ? { notifier: deps.notifier } : {}),
        ...(deps.logs ? { logs: deps.logs } : {}),
      });
      return { stuck: reported.length };
    }
    if (job.name !== REAP_SCHEDULER_ID) throw new Error(`unknown maintenance job ${job.name}`);
    if (!deps.client) return { skipped: true };
    const r = await reapDeployment({ ...deps, client: deps.client, dryRun: false });
    deps.log.info(
      { event: 'reaper.pass', destroyed: r.destroyed.length, kept: r.kept.length, failed: r.failed.length },
      `reaper: ${r.destroyed.length} destroyed, ${r.kept.length} in use, ${r.failed.length} failed`,
    );
    return { destroyed: r.destroyed.length, kept: r.kept.length, failed: r.failed.length };
  };
}
